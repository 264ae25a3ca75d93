from . import ps_hub_event
from . import ps_q2c_customer_lock
from . import ps_q2c_engagement
from . import ps_hub_event_link
