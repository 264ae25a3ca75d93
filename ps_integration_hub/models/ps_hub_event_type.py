from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError


class PsHubEventType(models.Model):
    """What the hub does with one type of event of one system: its handler, the records it
    produces, its batch size and the connectors that run it.

    Business addons ship these records as data (as queue_job ships queue.job.function and
    edi_core_oca its exchange types): dispatch is configuration an administrator reads in
    the UI, not a registry in code.
    """

    _name = "ps.hub.event.type"
    _description = "Integration Event Type"
    _order = "system, code"

    name = fields.Char(required=True, translate=True)
    active = fields.Boolean(default=True)
    system = fields.Selection(selection="_selection_system", required=True)
    code = fields.Char(
        required=True, help="The event type as the parser names it, e.g. deal.propertyChange.",
    )
    description = fields.Text(translate=True)
    handler_model_id = fields.Many2one(
        "ir.model", "Handler", required=True, ondelete="cascade",
        domain=[("model", "=like", "%.handler%")],
        help="The model whose process(events) turns these events into records.",
    )
    handler_model = fields.Char(related="handler_model_id.model", store=True, string="Handler Model")
    res_model_id = fields.Many2one(
        "ir.model", "Produces", ondelete="set null",
        help="The records these events produce: the exception desk may link an event to one.",
    )
    res_model = fields.Char(related="res_model_id.model", store=True, string="Produced Model")
    binding_model = fields.Char(
        "External Object Type",
        help="The type under which the produced record is bound to the event's external id "
             "(deal, company, Opportunity...), when Link on the desk binds it.",
    )
    batch_size = fields.Integer(
        default=50, help="At most this many events of the type go to one call of its handler.",
    )
    run_on_sandbox = fields.Boolean(
        "Runs on Sandbox Connectors",
        help="New sandbox connectors run this type. Off for types that make business "
             "documents (orders, invoices): a sandbox must not make them unless someone says so.",
    )
    activation_ids = fields.One2many("ps.hub.connector.event.type", "event_type_id", "Connectors")
    event_count = fields.Integer(compute="_compute_event_count")

    _code_unique = models.Constraint("UNIQUE (system, code)", "An event type is declared once per system.")
    _batch_size_positive = models.Constraint("CHECK (batch_size > 0)", "The batch size must be positive.")

    @api.model
    def _selection_system(self):
        return self.env["ps.hub.connector"]._fields["system"]._description_selection(self.env)

    @api.constrains("handler_model_id")
    def _check_handler_model(self):
        for event_type in self:
            model = event_type.handler_model_id.model
            if model not in self.env or not getattr(self.env[model], "_hub_handler", False):
                raise ValidationError(self.env._(
                    "%(model)s is not an integration event handler (a model inheriting ps.hub.handler).",
                    model=model))

    def _compute_event_count(self):
        counts = dict(self.env["ps.hub.event"]._read_group(
            [("event_type_id", "in", self.ids)], ["event_type_id"], ["__count"]))
        for event_type in self:
            event_type.event_count = counts.get(event_type, 0)

    @api.depends("system", "code", "name")
    def _compute_display_name(self):
        for event_type in self:
            event_type.display_name = f"{event_type.name} ({event_type.code})"

    @api.model_create_multi
    def create(self, vals_list):
        event_types = super().create(vals_list)
        self.env.registry.clear_cache()
        event_types._hub_activate_on_connectors(self.env["ps.hub.connector"].with_context(active_test=False).search(
            [("system", "in", list(set(event_types.mapped("system"))))]))
        return event_types

    def write(self, vals):
        result = super().write(vals)
        if {"system", "code", "active"} & set(vals):
            self.env.registry.clear_cache()
        if "system" in vals:
            self._hub_activate_on_connectors(self.env["ps.hub.connector"].with_context(active_test=False).search(
                [("system", "=", vals["system"])]))
        return result

    def unlink(self):
        # ps_hub_event.event_type_id has no foreign key (see _Many2oneWithoutForeignKey):
        # this is its ondelete="set null", also on the path of a module uninstall
        self.env["ps.hub.event"]._hub_forget("event_type_id", self.ids)
        result = super().unlink()
        self.env.registry.clear_cache()
        return result

    def _hub_activate_on_connectors(self, connectors):
        """One activation row per connector of the type's system, on or off by its default."""
        Activation = self.env["ps.hub.connector.event.type"].sudo()
        existing = {(a.connector_id.id, a.event_type_id.id) for a in Activation.search(
            [("event_type_id", "in", self.ids), ("connector_id", "in", connectors.ids)])}
        Activation.create([
            {"connector_id": connector.id, "event_type_id": event_type.id,
             "enabled": connector.environment == "production" or event_type.run_on_sandbox}
            for event_type in self for connector in connectors
            if connector.system == event_type.system and (connector.id, event_type.id) not in existing
        ])

    def _hub_switch(self, connectors, enabled=True):
        """Switch these event types on (or off) for ``connectors`` (records or ids)."""
        if not isinstance(connectors, models.BaseModel):
            connectors = self.env["ps.hub.connector"].browse(connectors)
        self._hub_activate_on_connectors(connectors)
        self.env["ps.hub.connector.event.type"].sudo().search([
            ("event_type_id", "in", self.ids), ("connector_id", "in", connectors.ids),
        ]).write({"enabled": enabled})

    @api.model
    @tools.ormcache()
    def _hub_type_ids(self) -> dict:
        """{(system, code): event type id} of the active event types (cached per registry)."""
        return {(t.system, t.code): t.id for t in self.sudo().search([])}

    def action_open_events(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window", "name": self.display_name, "res_model": "ps.hub.event",
            "view_mode": "list,form", "domain": [("event_type_id", "=", self.id)],
        }
