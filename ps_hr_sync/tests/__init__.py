from . import test_ownership
