from . import test_closed_won
from . import test_customer_matching
from . import test_deal_integrity
from . import test_desk_link
from . import test_services
from . import test_pagination
from . import test_event_types
from . import test_invoice_push
