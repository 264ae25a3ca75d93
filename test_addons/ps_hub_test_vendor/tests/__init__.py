from . import test_acme_inbound
from . import test_acme_ownership
