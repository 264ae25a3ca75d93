from . import ps_hub_event_action_wizard
from . import ps_hub_mapping_dry_run
