import hashlib
import json

from odoo import api, fields, models
from odoo.exceptions import ValidationError


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
    # the records of a model bound to a system: what a user's change of a field that system
    # owns is checked against (models/base.py)
    _record_idx = models.Index("(res_model, res_id)")

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

    # ------------------------------------------------------------------ by hand
    # The engine binds in sudo mode (_hub_bind, _hub_bind_many): what it just synchronised,
    # not audited. A person who creates, re-points or deletes a binding (a manager: nobody
    # else has write access) changes which record later events update: each such change is
    # checked (the connector and the record are the user's, in the same company) and
    # written to the audit log, before and after.

    @api.model_create_multi
    def create(self, vals_list):
        if self.env.su:
            return super().create(vals_list)
        for vals in vals_list:
            self._hub_check_manual(vals.get("connector_id"), vals.get("res_model"), vals.get("res_id"))
        bindings = super().create(vals_list)
        self.env["ps.hub.audit.log"]._hub_log_bindings([
            (binding, "binding_create", None, binding._hub_audit_values()) for binding in bindings
        ])
        return bindings

    def write(self, vals):
        if self.env.su:
            return super().write(vals)
        before = {binding.id: binding._hub_audit_values() for binding in self}
        for binding in self:  # refused before anything is written
            self._hub_check_manual(vals.get("connector_id", binding.connector_id.id),
                                   vals.get("res_model", binding.res_model), vals.get("res_id", binding.res_id))
        result = super().write(vals)
        self.env["ps.hub.audit.log"]._hub_log_bindings([
            (binding, "binding_write", before[binding.id], binding._hub_audit_values())
            for binding in self if before[binding.id] != binding._hub_audit_values()
        ])
        return result

    def unlink(self):
        if not self.env.su:
            self.check_access("unlink")
            # logged first: the row's binding_id is then set null by the foreign key
            self.env["ps.hub.audit.log"]._hub_log_bindings([
                (binding, "binding_unlink", binding._hub_audit_values(), None) for binding in self
            ])
        return super().unlink()

    def _hub_audit_values(self) -> dict:
        self.ensure_one()
        return {"connector_id": self.connector_id.id, "external_model": self.external_model,
                "external_id": self.external_id, "res_model": self.res_model, "res_id": self.res_id}

    @api.model
    def _hub_check_manual(self, connector_id, res_model, res_id):
        """What a person binds: a connector of the user's companies, to a record the user can
        read, of the connector's company or shared."""
        connector = self.env["ps.hub.connector"].browse(connector_id)
        connector.check_access("read")  # the company rule of the user's connectors
        if res_model not in self.env:
            raise ValidationError(self.env._("%s is not an Odoo model.", res_model))
        self._hub_check_target(self.env[res_model].browse(res_id), connector.company_id)

    @api.model
    def _hub_check_target(self, record, companies):
        """``record`` exists, the current user can read it, and it belongs to one of
        ``companies`` or is shared: what a person may bind an external id (or link an event)
        of those companies to."""
        record.ensure_one()
        if not record.exists():
            raise ValidationError(self.env._("%(model)s %(id)s does not exist.",
                                             model=record._description, id=record.id))
        record = record.with_env(self.env)
        record.check_access("read")
        field = record._fields.get("company_id")
        if field is not None and field.type == "many2one" and record.company_id \
                and record.company_id not in companies:
            raise ValidationError(self.env._(
                "%(record)s belongs to %(other)s, not to %(company)s.",
                record=record.display_name, other=record.company_id.name,
                company=", ".join(companies.mapped("name")),
            ))
