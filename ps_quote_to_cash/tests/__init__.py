from . import test_closed_won
