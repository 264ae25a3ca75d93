from . import ps_hub_connector
