from . import ps_hub_event_action_wizard
