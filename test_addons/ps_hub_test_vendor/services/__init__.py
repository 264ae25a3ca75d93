from . import acme
