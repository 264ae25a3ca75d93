import json

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL


def _json(value):
    return None if value is None else json.dumps(value, default=str)


class PsHubAuditLog(models.Model):
    _name = "ps.hub.audit.log"
    _description = "Integration Audit Log"
    _order = "id desc"
    _log_access = True

    # set null when retention deletes the event: the row keeps connector, type and external id
    event_id = fields.Many2one("ps.hub.event", index=True, readonly=True, ondelete="set null")
    # one row per processed event: only the columns it is looked up by are indexed
    connector_id = fields.Many2one("ps.hub.connector", readonly=True, ondelete="set null")
    company_id = fields.Many2one("res.company", readonly=True)
    event_type = fields.Char(readonly=True)
    external_id = fields.Char("External ID", index=True, readonly=True)
    binding_id = fields.Many2one("ps.hub.binding", index="btree_not_null", readonly=True, ondelete="set null")
    external_model = fields.Char("External Object", readonly=True, help="The vendor's object type of the binding.")
    user_id = fields.Many2one("res.users", readonly=True)
    action = fields.Selection([
        ("process", "Processed by a worker"),
        ("reclaim", "Taken back from a lost worker"),
        ("retry", "Retry"),
        ("edit_payload", "Edit payload and retry"),
        ("ignore", "Ignore"),
        ("link", "Link to a record"),
        ("binding_create", "Binding created by hand"),
        ("binding_write", "Binding changed by hand"),
        ("binding_unlink", "Binding deleted by hand"),
        ("breaker_open", "Circuit breaker opened"),
        ("breaker_close", "Circuit breaker closed"),
    ], required=True, readonly=True)
    before = fields.Json(readonly=True)
    after = fields.Json(readonly=True)
    note = fields.Text(readonly=True)

    def write(self, vals):
        raise UserError(self.env._("The integration audit log is append-only."))

    def unlink(self):
        raise UserError(self.env._("The integration audit log is append-only."))

    @api.model
    def _hub_log_many(self, entries):
        """Append (event, action, before, after[, note[, binding]]) entries in one INSERT.

        The connector, company, event type and external id are copied from the event row
        in the same statement (no read of the events through the ORM), so the entry stays
        meaningful once the retention deletes the event.
        """
        if not entries:
            return
        self.env["ps.hub.event"].flush_model(["connector_id", "company_id", "event_type", "external_id"])
        rows = []
        for entry in entries:
            event, action, before, after = entry[:4]
            note = entry[4] if len(entry) > 4 else None
            binding = entry[5] if len(entry) > 5 else None
            rows.append(SQL(
                "(%s::int, %s::varchar, %s::jsonb, %s::jsonb, %s::text, %s::int)",
                event.id, action, _json(before), _json(after), note, binding.id if binding else None,
            ))
        self.env.cr.execute(SQL(
            """
            INSERT INTO ps_hub_audit_log (event_id, connector_id, company_id, event_type, external_id,
                   binding_id, external_model, user_id, action, before, after, note,
                   create_uid, create_date, write_uid, write_date)
            SELECT e.id, e.connector_id, e.company_id, e.event_type, e.external_id,
                   b.id, b.external_model, %(uid)s, v.action, v.before, v.after, v.note,
                   %(uid)s, now() AT TIME ZONE 'UTC', %(uid)s, now() AT TIME ZONE 'UTC'
              FROM (VALUES %(rows)s) AS v(event_id, action, before, after, note, binding_id)
              JOIN ps_hub_event e ON e.id = v.event_id
              LEFT JOIN ps_hub_binding b ON b.id = v.binding_id
            """,
            uid=self.env.uid, rows=SQL(", ").join(rows),
        ))

    @api.model
    def _hub_log_bindings(self, entries):
        """Append (binding, action, before, after) entries of bindings changed by hand."""
        if not entries:
            return
        rows = [SQL(
            "(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, now() AT TIME ZONE 'UTC', "
            "%s, now() AT TIME ZONE 'UTC')",
            binding.id, binding.connector_id.id, binding.company_id.id, binding.external_model,
            binding.external_id, self.env.uid, action, _json(before), _json(after),
            self.env.uid, self.env.uid,
        ) for binding, action, before, after in entries]
        self.env.cr.execute(SQL(
            "INSERT INTO ps_hub_audit_log (binding_id, connector_id, company_id, external_model, "
            "external_id, user_id, action, before, after, create_uid, create_date, write_uid, "
            "write_date) VALUES %s",
            SQL(", ").join(rows),
        ))
