from . import test_acme_inbound
