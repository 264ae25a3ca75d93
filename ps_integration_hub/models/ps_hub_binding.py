import hashlib
import json

from odoo import api, fields, models


def payload_hash(payload) -> str:
    """Stable digest of a payload, to skip updates that change nothing."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class PsHubBinding(models.Model):
    _name = "ps.hub.binding"
    _description = "External ID Binding"
    _order = "connector_id, external_model, external_id"
    _check_company_auto = True

    connector_id = fields.Many2one("ps.hub.connector", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="connector_id.company_id", store=True, index=True)
    external_model = fields.Char(required=True, help="The vendor's object type: company, deal, Account...")
    external_id = fields.Char(required=True)
    res_model = fields.Char("Odoo Model", required=True)
    res_id = fields.Many2oneReference("Odoo Record ID", model_field="res_model", required=True)
    payload_hash = fields.Char(help="Digest of the last payload applied.")
    last_sync = fields.Datetime(default=fields.Datetime.now)

    _external_unique = models.UniqueIndex("(connector_id, external_model, external_id)")
    # A partner may carry several external ids of one kind: a CRM often holds one customer
    # twice (same VAT, written differently), and both must bind to the one Odoo customer.
    # Any other record is bound once per kind; a partner's first binding is its reference.
    _record_unique = models.UniqueIndex(
        "(connector_id, external_model, res_model, res_id) WHERE res_model <> 'res.partner'")

    @api.depends("external_model", "external_id", "res_model", "res_id")
    def _compute_display_name(self):
        for binding in self:
            binding.display_name = f"{binding.external_model} {binding.external_id} -> " \
                f"{binding.res_model},{binding.res_id}"

    @api.model
    def _hub_lookup(self, connector, external_model: str, external_id: str):
        """The bound record, or None (a binding to a deleted record counts as none)."""
        binding = self.sudo().search([
            ("connector_id", "=", connector.id), ("external_model", "=", external_model),
            ("external_id", "=", str(external_id)),
        ], limit=1)
        if not binding or binding.res_model not in self.env:
            return None
        return self.env[binding.res_model].browse(binding.res_id).exists() or None

    @api.model
    def _hub_bind(self, connector, external_model: str, external_id: str, record, payload=None):
        """Bind (or re-bind) the external object to ``record``."""
        record.ensure_one()
        binding = self.sudo().search([
            ("connector_id", "=", connector.id), ("external_model", "=", external_model),
            ("external_id", "=", str(external_id)),
        ], limit=1)
        values = {"res_model": record._name, "res_id": record.id,
                  "last_sync": fields.Datetime.now()}
        if payload is not None:
            values["payload_hash"] = payload_hash(payload)
        if binding:
            binding.write(values)
            return binding
        return self.sudo().create(dict(values, connector_id=connector.id,
                                       external_model=external_model, external_id=str(external_id)))

    @api.model
    def _hub_bind_many(self, entries):
        """Bind many (connector, external_model, external_id, record) at once (all new)."""
        now = fields.Datetime.now()
        return self.sudo().create([{
            "connector_id": connector.id, "external_model": external_model,
            "external_id": str(external_id), "res_model": record._name, "res_id": record.id,
            "last_sync": now,
        } for connector, external_model, external_id, record in entries])
