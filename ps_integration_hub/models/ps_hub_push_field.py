from datetime import date, datetime

from odoo import api, fields, models
from odoo.exceptions import ValidationError


class PsHubPushField(models.Model):
    """One value a "Push to connector" server action sends: a field of the record and the
    vendor property it goes to. A stand-in for outbound field mappings: the action reads its
    values through ``ir.actions.server._ps_hub_push_values`` only."""

    _name = "ps.hub.push.field"
    _description = "Integration Push: Field"
    _order = "action_id, sequence, id"

    action_id = fields.Many2one("ir.actions.server", "Server Action", required=True, index=True, ondelete="cascade")
    sequence = fields.Integer(default=10)
    model_id = fields.Many2one(related="action_id.model_id")
    field_id = fields.Many2one(
        "ir.model.fields", "Field", required=True, ondelete="cascade",
        domain="[('model_id', '=', model_id), ('ttype', 'not in', ('one2many', 'many2many', 'binary'))]",
        help="The field of the record whose value is pushed.",
    )
    vendor_property = fields.Char(
        "Vendor Property", required=True,
        help="The property (HubSpot) or field (Salesforce API name) the value goes to, e.g. invoice_status "
             "or Invoice_Status__c.",
    )

    @api.constrains("field_id", "action_id")
    def _check_field_model(self):
        for line in self:
            if line.field_id.model_id != line.action_id.model_id:
                raise ValidationError(self.env._(
                    "The field %(field)s is not a field of %(model)s, the model of the action.",
                    field=line.field_id.name, model=line.action_id.model_id.model))

    def _hub_values(self, record) -> dict:
        """{vendor property: value} of ``record`` for these lines, as JSON the vendors accept."""
        record.ensure_one()
        return {line.vendor_property: self._hub_json(record, line.field_id.name) for line in self}

    @api.model
    def _hub_json(self, record, name):
        """A field's value as a vendor takes it: a selection's key, a record's name, dates in ISO
        8601, no value as None (not Odoo's False, except for a boolean)."""
        field = record._fields[name]
        value = record[name]
        if field.type == "boolean":
            return bool(value)
        if field.type == "many2one":
            return value.display_name if value else None
        if value is False or value is None:
            return None
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, date):
            return value.isoformat()
        return value
