from odoo import models
from odoo.tools.sql import column_exists, table_exists


class IrModel(models.Model):
    _inherit = "ir.model"

    def unlink(self):
        self._hub_unlink_event_types()
        return super().unlink()

    def _hub_unlink_event_types(self):
        """Unlink, through the ORM, the event types whose handler is among these models.

        ps_hub_event_type.handler_model_id is ``ondelete="cascade"``: left to PostgreSQL,
        deleting a handler's model (uninstalling the module that defines it, deleting a manual
        model) would delete its event types without PsHubEventType.unlink, which empties the
        type of their events (ps_hub_event.event_type_id has no foreign key): the events would
        keep the id of a deleted type.
        """
        names = set(self.mapped("model"))
        if not self.ids or names & {"ps.hub.event.type", "ps.hub.event"}:
            return  # the hub itself is being uninstalled: its tables go with its models
        # uninstalling the hub deletes its fields, then its models, in more than one batch
        # when one fails: what is left of the event type and event may be half gone
        registry, cr = self.env.registry, self.env.cr
        EventType, Event = registry.get("ps.hub.event.type"), registry.get("ps.hub.event")
        if (EventType is None or Event is None or "handler_model_id" not in EventType._fields
                or not column_exists(cr, EventType._table, "handler_model_id")
                or not table_exists(cr, Event._table)):
            return
        self.env["ps.hub.event.type"].sudo().with_context(active_test=False).search(
            [("handler_model_id", "in", self.ids)]).unlink()
