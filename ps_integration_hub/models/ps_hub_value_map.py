from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError

from ..services.mapping import lookup_key


class PsHubValueMap(models.Model):
    """A table of vendor values -> Odoo values (a deal stage, a SKU -> a product, a legal
    entity -> a company), which mapping lines look values up in."""

    _name = "ps.hub.value.map"
    _inherit = ["ps.hub.cached.mixin"]
    _description = "Integration Value Map"
    _order = "name"

    name = fields.Char(required=True, translate=True)
    code = fields.Char(required=True, help="How mappings name this map, e.g. deal_stage.")
    active = fields.Boolean(default=True)
    kind = fields.Selection(
        [("value", "Text Value"), ("record", "Odoo Record")], required=True, default="value",
        help="What a vendor value maps to: a text value, or a record of the chosen model.",
    )
    model_id = fields.Many2one(
        "ir.model", "Record Model", ondelete="cascade",
        help="The model of the records the vendor values map to (kind Odoo Record).",
    )
    res_model = fields.Char(related="model_id.model", store=True, string="Record Model Name")
    match_field_id = fields.Many2one(
        "ir.model.fields", "Else Match By", ondelete="set null",
        domain="[('model_id', '=', model_id), ('ttype', '=', 'char'), ('store', '=', True)]",
        help="A vendor value without entry is looked for in this field of the records (same text, any "
             "case): one record found is the value. Empty: a value without entry fails.",
    )
    entry_ids = fields.One2many("ps.hub.value.map.entry", "value_map_id", "Entries", copy=True)
    entry_count = fields.Integer(compute="_compute_entry_count")
    note = fields.Text(translate=True)

    _code_unique = models.Constraint("UNIQUE (code)", "A value map code is used once.")

    @api.constrains("kind", "model_id")
    def _check_model(self):
        for value_map in self:
            if value_map.kind == "record" and not value_map.model_id:
                raise ValidationError(self.env._("Value map %s maps to records: choose their model.",
                                                 value_map.name))

    @api.depends("entry_ids")
    def _compute_entry_count(self):
        counts = dict(self.env["ps.hub.value.map.entry"]._read_group(
            [("value_map_id", "in", self.ids)], ["value_map_id"], ["__count"]))
        for value_map in self:
            value_map.entry_count = counts.get(value_map, 0)

    def _hub_match(self, value, found: dict | None = None):
        """The id of the one record whose match field equals ``value`` (any case), or None.
        ``found`` caches the answers of one run: {(map id, key): id or None}."""
        self.ensure_one()
        if self.kind != "record" or not self.match_field_id or not isinstance(value, str) or not value.strip():
            return None
        found = {} if found is None else found
        key = (self.id, lookup_key(value))
        if key not in found:
            records = self.env[self.res_model].sudo().with_context(active_test=False).search(
                [(self.match_field_id.name, "=ilike", value.strip())], limit=2)
            found[key] = records.id if len(records) == 1 else None
        return found[key]

    def _hub_table(self) -> dict:
        """{vendor value: Odoo value} (a record id for a map of records) for the mapping engine."""
        self.ensure_one()
        if self.kind == "record":
            return {e.external_value: e.res_id for e in self.entry_ids if e.res_id}
        return {e.external_value: e.value for e in self.entry_ids if e.value}

    @api.model
    def _hub_lookup(self, code: str, value):
        """The record (or text) the value map ``code`` gives ``value``; None when the map or
        the entry does not exist. Records come back in sudo mode: the caller checks them."""
        if value in (None, False, ""):
            return None
        value_map = self.sudo().search([("code", "=", code)], limit=1)
        if not value_map:
            return None
        table = {lookup_key(k): v for k, v in value_map._hub_table().items()}
        found = table.get(lookup_key(value))
        if found is None or value_map.kind == "value":
            return found
        return self.env[value_map.res_model].sudo().browse(found).exists() or None

    @api.model
    @tools.ormcache("code", "value")
    def _hub_external_values(self, code: str, value: str) -> frozenset | None:
        """The vendor values the active value map ``code`` gives the text ``value`` (any case,
        as entries are looked up), say the deal stages valued ``won``. None when no active map
        has that code (deleted or archived), for the caller to fall back on its own.

        Cached per registry, as the mappings are: a change of a map or of an entry clears the
        cache (``ps.hub.cached.mixin``), in every process, so it counts from the next event.
        """
        value_map = self.sudo().search([("code", "=", code)], limit=1)
        if not value_map:
            return None
        wanted = lookup_key(value)
        return frozenset(entry.external_value for entry in value_map.entry_ids
                         if entry.value and lookup_key(entry.value) == wanted)


class PsHubValueMapEntry(models.Model):
    _name = "ps.hub.value.map.entry"
    _inherit = ["ps.hub.cached.mixin"]
    _description = "Integration Value Map Entry"
    _order = "value_map_id, sequence, id"

    value_map_id = fields.Many2one("ps.hub.value.map", required=True, index=True, ondelete="cascade")
    sequence = fields.Integer(default=10)
    external_value = fields.Char(
        "Vendor Value", required=True, help="The value as the vendor sends it (case and surrounding "
        "spaces are ignored when it is looked up).")
    value = fields.Char("Odoo Value", help="The text value it maps to (map of text values).")
    res_model = fields.Char(related="value_map_id.res_model", store=True, string="Record Model")
    res_id = fields.Many2oneReference("Odoo Record", model_field="res_model",
                                      help="The record it maps to (map of records).")
    kind = fields.Selection(related="value_map_id.kind")

    _external_unique = models.UniqueIndex(
        "(value_map_id, lower(btrim(external_value)))", "A vendor value appears once in a value map.")

    @api.constrains("external_value", "value", "res_id")
    def _check_entry(self):
        for entry in self:
            if not lookup_key(entry.external_value or ""):
                raise ValidationError(self.env._("A value map entry needs a vendor value."))
            wanted = entry.res_id if entry.value_map_id.kind == "record" else entry.value
            if not wanted:
                raise ValidationError(self.env._(
                    "Entry %(value)s of value map %(map)s maps to nothing: give it the Odoo value.",
                    value=entry.external_value, map=entry.value_map_id.name))

    @api.depends("external_value", "value", "res_id")
    def _compute_display_name(self):
        for entry in self:
            target = entry.value
            if entry.kind == "record" and entry.res_model in self.env and entry.res_id:
                target = self.env[entry.res_model].browse(entry.res_id).display_name
            entry.display_name = f"{entry.external_value} -> {target or ''}"
