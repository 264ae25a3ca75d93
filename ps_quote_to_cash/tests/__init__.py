from . import test_closed_won
from . import test_pagination
