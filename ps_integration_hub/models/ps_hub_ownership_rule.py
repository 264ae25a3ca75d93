from typing import NamedTuple

from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError
from odoo.models import MAGIC_COLUMNS
from odoo.tools import sql

from ..services import ownership
from ..services.ownership import ODOO


class Owned(NamedTuple):
    """One active rule, as the write checks and the inbound filter read it (cached)."""

    owner: str
    scope: str
    external_model: str | None


class PsHubOwnershipRule(models.Model):
    """The system of record of one field of one model: Odoo or a connector's system.

    An inbound update writes no field that Odoo or another system owns
    (``_hub_filter_inbound``); a user's change of a field an external system owns is refused
    (``base.write``, models/base.py), the integration's own writes pass. Business modules
    ship their rules as data; the integration manager edits them.
    """

    _name = "ps.hub.ownership.rule"
    _inherit = ["ps.hub.cached.mixin"]
    _description = "Field Ownership Rule"
    _order = "model, field_name, id"

    model_id = fields.Many2one(
        "ir.model", "Model", required=True, ondelete="cascade", domain=[("transient", "=", False)],
    )
    model = fields.Char(related="model_id.model", store=True, index=True, string="Model Name")
    field_id = fields.Many2one(
        "ir.model.fields", "Field", required=True, ondelete="cascade",
        domain="[('model_id', '=', model_id), ('name', 'not in', %s)]" % list(MAGIC_COLUMNS),
    )
    field_name = fields.Char(related="field_id.name", store=True, string="Field Name")
    owner = fields.Selection(
        selection="_selection_owner", required=True, default=ODOO,
        help="The system of record of the field. Odoo: inbound updates never overwrite it. An "
             "external system: only that system's updates write it, and a user's change in Odoo "
             "is refused with a message that names the owner.",
    )
    scope = fields.Selection(
        [("bound", "Records synchronised with the owner"), ("all", "All records")],
        "Refuse Local Changes On", required=True, default="bound",
        help="Where a user's change of the field is refused (for an external owner). Records "
             "synchronised with the owner: those bound to one of its active connectors; records "
             "created in Odoo stay editable. All records: every record, and a new record may "
             "not be given a value other than the default either.",
    )
    external_model = fields.Char(
        "External Object Type",
        help="With 'Records synchronised with the owner': only records bound as this type of "
             "the owner's objects (company, contact, employee...). Empty: bound as any type.",
    )
    active = fields.Boolean(default=True)
    note = fields.Text(help="Why this system owns the field, for the next administrator.")

    _field_unique = models.UniqueIndex("(model_id, field_id)", "A field has one ownership rule.")

    @api.model
    def _selection_owner(self):
        """Odoo, and every system a connector can be of (modules add theirs)."""
        systems = self.env["ps.hub.connector"]._fields["system"]._description_selection(self.env)
        return [(ODOO, "Odoo"), *systems]

    @api.depends("model_id", "field_id", "owner")
    def _compute_display_name(self):
        owners = dict(self._fields["owner"]._description_selection(self.env))
        for rule in self:
            rule.display_name = f"{rule.model_id.name or ''} / {rule.field_id.field_description or ''}: " \
                f"{owners.get(rule.owner, rule.owner or '')}"

    @api.onchange("model_id")
    def _onchange_model_id(self):
        if self.field_id.model_id != self.model_id:
            self.field_id = False

    @api.constrains("model_id", "field_id")
    def _check_field(self):
        for rule in self:
            if rule.field_id.model_id != rule.model_id:
                raise ValidationError(self.env._(
                    "%(field)s is not a field of %(model)s.",
                    field=rule.field_id.field_description, model=rule.model_id.name))
            if rule.field_id.name in MAGIC_COLUMNS:
                raise ValidationError(self.env._(
                    "%(field)s is written by Odoo itself: it cannot be owned by a system.",
                    field=rule.field_id.field_description))

    # ------------------------------------------------------------------ lookups

    @api.model
    @tools.ormcache()
    def _hub_owned_fields(self) -> dict:
        """{model name: {field name: Owned}} of the active rules (cached per registry: every
        write of every model reads it)."""
        owned = {}
        if not sql.table_exists(self.env.cr, self._table):
            return owned  # the code is newer than the database: until the module is upgraded
        for rule in self.sudo().search([]):
            owned.setdefault(rule.model, {})[rule.field_name] = Owned(
                rule.owner, rule.scope, (rule.external_model or "").strip() or None)
        return owned

    @api.model
    def _hub_filter_inbound(self, model_name: str, system: str, values: dict) -> tuple[dict, list[str]]:
        """(``values`` without the fields ``system`` may not write, the names dropped).

        What an inbound update of a ``model_name`` record from ``system`` may write: the
        fields it owns and those no rule names; a field Odoo or another system owns is dropped.
        """
        owned = self._hub_owned_fields().get(model_name)
        if not owned:
            return dict(values), []
        return ownership.split_inbound({name: rule.owner for name, rule in owned.items()}, system, values)

    @api.model
    def _hub_owner_label(self, owner: str) -> str:
        return dict(self._fields["owner"]._description_selection(self.env)).get(owner, owner)

    @api.model
    def _hub_dropped_message(self, model_name: str, system: str, dropped: list[str]) -> str:
        """What an event whose update of ``dropped`` fields was not applied says about it."""
        Model = self.env[model_name]
        owned = self._hub_owned_fields().get(model_name, {})
        parts = [
            self.env._("%(field)s (owned by %(owner)s)",
                       field=Model._fields[name]._description_string(self.env) if name in Model._fields else name,
                       owner=self._hub_owner_label(owned[name].owner) if name in owned else "?")
            for name in dropped
        ]
        return self.env._(
            "Not applied: %(fields)s. The ownership rules let %(system)s write only the fields "
            "it owns or no system owns; change these in their owner.",
            fields=", ".join(parts), system=self._hub_owner_label(system))
