from odoo import api, fields, models

LINKABLE_MODELS = [
    ("res.partner", "Contact / Customer"),
    ("sale.order", "Sales Order"),
    ("project.project", "Project"),
    ("account.move", "Invoice"),
    ("hr.employee", "Employee"),
]


class PsHubEventActionWizard(models.TransientModel):
    _name = "ps.hub.event.action.wizard"
    _description = "Work an Integration Exception"

    event_ids = fields.Many2many("ps.hub.event", required=True)
    action = fields.Selection(
        [("ignore", "Ignore"), ("edit", "Edit payload and retry"), ("link", "Link to a record")],
        required=True,
    )
    reason = fields.Text()
    payload_text = fields.Text("Corrected Payload")
    record_ref = fields.Reference(
        selection="_selection_record_ref", string="Existing Record",
    )
    binding_model = fields.Char(
        compute="_compute_binding_model", store=True, readonly=False,
        help="Also bind the event's external id to this record under this object type "
        "(e.g. 'deal'), so later events of the same object reuse it. Set from what the "
        "event's type declares for the chosen record; empty it to link without binding.",
    )

    @api.model
    def _selection_record_ref(self):
        return [(model, label) for model, label in LINKABLE_MODELS if model in self.env]

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        event_ids = values.get("event_ids") or self.env.context.get("active_ids") or []
        if event_ids and "event_ids" in fields_list:
            values["event_ids"] = [(6, 0, event_ids)]
            events = self.env["ps.hub.event"].browse(event_ids)
            if len(events) == 1 and "payload_text" in fields_list:
                values["payload_text"] = events.payload_pretty
        return values

    @api.depends("record_ref", "event_ids")
    def _compute_binding_model(self):
        for wizard in self:
            event = wizard.event_ids if len(wizard.event_ids) == 1 else None
            record = wizard.record_ref
            wizard.binding_model = (
                event and record and event._hub_linkable_models().get(record._name)
            ) or False

    def action_confirm(self):
        """Apply the chosen action to the events."""
        self.ensure_one()
        if self.action == "ignore":
            self.event_ids.action_ignore(self.reason)
        elif self.action == "edit":
            self.event_ids.ensure_one()
            self.event_ids.action_edit_payload_and_retry(self.payload_text or "")
        elif self.action == "link":
            self.event_ids.ensure_one()
            self.event_ids.action_link(self.record_ref, self.binding_model or None)
        return {"type": "ir.actions.act_window_close"}
