from . import test_crypto
from . import test_exception_desk
from . import test_inbound_http
from . import test_security
from . import test_signatures
from . import test_worker
from . import test_views
from . import test_services
