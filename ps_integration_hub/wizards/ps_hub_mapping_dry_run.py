from datetime import date, datetime

from odoo import api, fields, models
from odoo.exceptions import UserError

RESULTS = [
    ("failed", "Would Fail"),
    ("change", "Would Change the Record"),
    ("same", "Record Unchanged"),
    ("new", "No Record Yet"),
    ("skipped", "Nothing to Map"),
]


class PsHubMappingDryRun(models.TransientModel):
    """A draft mapping replayed on the last stored events of its object, writing nothing
    but this report: what each event would give, change and fail."""

    _name = "ps.hub.mapping.dry.run"
    _description = "Integration Mapping Dry-Run"

    mapping_id = fields.Many2one("ps.hub.mapping", required=True, ondelete="cascade", readonly=True)
    mapping_state = fields.Selection(related="mapping_id.state")
    compare_id = fields.Many2one(
        "ps.hub.mapping", "Compared With", readonly=True,
        help="The active version, whose result on the same events is compared with the draft's.",
    )
    limit = fields.Integer("Last Events", default=50, required=True)
    line_ids = fields.One2many("ps.hub.mapping.dry.run.line", "wizard_id", "Events", readonly=True)
    event_count = fields.Integer("Events Replayed", readonly=True)
    failed_count = fields.Integer("Would Fail", readonly=True)
    change_count = fields.Integer("Would Change a Record", readonly=True)
    differ_count = fields.Integer("Differ from Active Version", readonly=True)
    skipped_count = fields.Integer("Nothing to Map", readonly=True)

    def _hub_action(self):
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
                "view_mode": "form", "target": "new", "name": self.env._("Dry-Run of %s", self.mapping_id.display_name)}

    def action_run(self):
        """Replay the mapping on the last events; the report replaces the previous one."""
        self.ensure_one()
        if self.limit <= 0:
            raise UserError(self.env._("Replay at least one event."))
        mapping = self.mapping_id
        events = mapping._hub_stored_events(self.limit)
        compare = mapping.search([*mapping._hub_identity_domain(), ("state", "=", "active")], limit=1)
        compare = compare if compare != mapping else self.env["ps.hub.mapping"]
        report = mapping._hub_dry_run(events, compare=compare)
        lines = [self._hub_line_values(mapping, row) for row in report]
        self.line_ids.unlink()
        self.write({
            "compare_id": compare.id,
            "line_ids": [fields.Command.create(values) for values in lines],
            "event_count": len(lines),
            "failed_count": sum(1 for v in lines if v["result"] == "failed"),
            "change_count": sum(1 for v in lines if v["result"] == "change"),
            "differ_count": sum(1 for v in lines if v["differs"]),
            "skipped_count": sum(1 for v in lines if v["result"] == "skipped"),
        })
        return self._hub_action()

    def action_activate(self):
        """Activate the draft that was replayed."""
        self.ensure_one()
        self.mapping_id.action_activate()
        return {"type": "ir.actions.act_window", "res_model": "ps.hub.mapping", "res_id": self.mapping_id.id,
                "view_mode": "form", "target": "current"}

    @api.model
    def _hub_line_values(self, mapping, row) -> dict:
        result, record, event = row["result"], row["record"], row["event"]
        fmt = self._hub_formatter(mapping)
        if result is None or (result.ok and not result.values):
            kind = "skipped"  # the event carries nothing this mapping reads
        elif not result.ok:
            kind = "failed"
        elif record is None:
            kind = "new"
        else:
            kind = "change" if row["changes"] else "same"
        return {
            "event_id": event.id,
            "res_model": record._name if record is not None else False,
            "res_id": record.id if record is not None else False,
            "result": kind,
            "values": "\n".join(f"{name}: {fmt(name, value)}"
                                for name, value in (result.values if result else {}).items()) or False,
            "changes": "\n".join(f"{name}: {fmt(name, old)} -> {fmt(name, new)}"
                                 for name, (old, new) in row["changes"].items()) or False,
            "differs": "\n".join(f"{name}: {fmt(name, old)} -> {fmt(name, new)}"
                                 for name, (old, new) in row["differs"].items()) or False,
            "errors": "\n".join([*(result.problems() if result else ()),
                                 *(f"{name}: not owned by {mapping.system}, dropped"
                                   for name in (result.dropped if result else ()))]) or False,
        }

    @api.model
    def _hub_formatter(self, mapping):
        """value -> text for people: a record id as its name, a date in ISO 8601."""
        Model = self.env[mapping.model] if mapping.model in self.env else None

        def fmt(name, value):
            field = Model._fields.get(name) if Model is not None and mapping.direction == "in" else None
            if value is None or (value is False and (field is None or field.type != "boolean")):
                return "(empty)"
            if field is not None and field.type == "many2one" and isinstance(value, int):
                return self.env[field.comodel_name].sudo().browse(value).exists().display_name or f"#{value} (missing)"
            if isinstance(value, (date, datetime)):
                return value.isoformat()
            return repr(value) if isinstance(value, str) else str(value)

        return fmt


class PsHubMappingDryRunLine(models.TransientModel):
    _name = "ps.hub.mapping.dry.run.line"
    _description = "Integration Mapping Dry-Run Event"
    _order = "id"

    wizard_id = fields.Many2one("ps.hub.mapping.dry.run", required=True, ondelete="cascade", index=True)
    event_id = fields.Many2one("ps.hub.event", "Event", readonly=True, ondelete="cascade")
    event_type = fields.Char(related="event_id.event_type")
    external_id = fields.Char(related="event_id.external_id")
    res_model = fields.Char("Record Model", readonly=True)
    res_id = fields.Many2oneReference("Record", model_field="res_model", readonly=True)
    result = fields.Selection(RESULTS, readonly=True)
    values = fields.Text("Draft Gives", readonly=True)
    changes = fields.Text("Would Change", readonly=True, help="Field: now -> after, on the event's record.")
    differs = fields.Text("Differs from Active", readonly=True,
                          help="Field: the active version's value -> the draft's, on this event.")
    errors = fields.Text("Would Fail", readonly=True)
