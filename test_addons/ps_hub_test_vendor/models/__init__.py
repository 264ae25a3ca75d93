from . import ps_hub_connector
from . import ps_hub_test_vendor_contact_handler
