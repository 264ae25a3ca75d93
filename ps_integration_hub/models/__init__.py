from . import ir_cron
from . import ps_hub_connector
from . import ps_hub_event
from . import ps_hub_binding
from . import ps_hub_audit_log
