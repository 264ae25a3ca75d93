from odoo import models


class PsHubHandlerRecordOnly(models.AbstractModel):
    """Keeps the events of a type, audited and searchable, and does nothing else: for types
    a connector delivers that no process needs yet."""

    _name = "ps.hub.handler.record.only"
    _inherit = "ps.hub.handler"
    _description = "Integration Handler: record only"

    def _process_one(self, event):
        return None
