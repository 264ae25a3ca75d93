import json

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL


class PsHubAuditLog(models.Model):
    _name = "ps.hub.audit.log"
    _description = "Integration Audit Log"
    _order = "id desc"
    _log_access = True

    event_id = fields.Many2one("ps.hub.event", index=True, readonly=True, ondelete="set null")
    connector_id = fields.Many2one("ps.hub.connector", index=True, readonly=True, ondelete="set null")
    company_id = fields.Many2one("res.company", index=True, readonly=True)
    user_id = fields.Many2one("res.users", readonly=True)
    action = fields.Selection([
        ("process", "Processed by a worker"),
        ("reclaim", "Taken back from a lost worker"),
        ("retry", "Retry"),
        ("edit_payload", "Edit payload and retry"),
        ("ignore", "Ignore"),
        ("link", "Link to a record"),
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
        """Append (event, action, before, after[, note]) entries in one INSERT."""
        if not entries:
            return
        rows = []
        for entry in entries:
            event, action, before, after = entry[:4]
            note = entry[4] if len(entry) > 4 else None
            rows.append(SQL(
                "(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, now() AT TIME ZONE 'UTC', "
                "%s, now() AT TIME ZONE 'UTC')",
                event.id, event.connector_id.id, event.company_id.id, self.env.uid, action,
                json.dumps(before, default=str), json.dumps(after, default=str), note,
                self.env.uid, self.env.uid,
            ))
        self.env.cr.execute(SQL(
            "INSERT INTO ps_hub_audit_log (event_id, connector_id, company_id, user_id, action, "
            "before, after, note, create_uid, create_date, write_uid, write_date) VALUES %s",
            SQL(", ").join(rows),
        ))
