from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from odoo import api, fields, models, tools
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import SQL

from odoo.addons.base.models.ir_model import MODULE_UNINSTALL_FLAG

from ..services import mapping as mp

STATES = [("draft", "Draft"), ("active", "Active"), ("archived", "Archived")]
# what makes two mapping records versions of one mapping
# a mapping's versions share these; two Odoo models may map one external object (an invoice's
# and an order's values both pushed to a deal): each is a mapping of its own
IDENTITY = ("system", "connector_id", "external_object", "direction", "model_id")
# what a version is made of: frozen once the version leaves draft
DEFINITION = {*IDENTITY, "model_id", "line_ids", "version"}
TRANSITION = "ps_hub_mapping_transition"  # context key of the state changes the actions make


@dataclass(slots=True)
class EventRow:
    """What the dry-run reads of a stored event (one query for all of them, no ORM record)."""

    id: int
    connector_id: int
    event_type_id: int | None
    external_id: str | None
    res_model: str | None
    res_id: int | None
    payload: Any
    binding_model: str | None = None
    handler_model: str | None = None


class PsHubMapping(models.Model):
    """One version of the field mapping of an external object (a HubSpot company, a
    Salesforce Opportunity) to an Odoo model, or of an Odoo model to the vendor's object.

    Versions of one mapping share system, connector, external object and direction. Only
    a draft is edited; activating it (after a dry-run) archives the version that was
    active, which stays readable, as do the events that record it.
    """

    _name = "ps.hub.mapping"
    _description = "Integration Field Mapping"
    _order = "system, external_object, direction, connector_id, version desc"

    name = fields.Char(required=True, translate=True)
    system = fields.Selection(selection="_selection_system", required=True)
    connector_id = fields.Many2one(
        "ps.hub.connector", ondelete="cascade", index="btree_not_null",
        help="Empty: the mapping of every connector of the system that has none of its own.",
    )
    external_object = fields.Char(
        "External Object", required=True,
        help="The vendor's object type as the event types name it: company, deal, Account, Opportunity...",
    )
    direction = fields.Selection(
        [("in", "Inbound (vendor -> Odoo)"), ("out", "Outbound (Odoo -> vendor)")], required=True, default="in",
        help="Inbound: source paths in the vendor's payload, targets Odoo fields. Outbound: source paths "
             "of fields of the Odoo record (partner_id.vat), targets the vendor's property names.",
    )
    model_id = fields.Many2one("ir.model", "Odoo Model", required=True, ondelete="cascade")
    model = fields.Char(related="model_id.model", store=True, string="Odoo Model Name")
    version = fields.Integer(readonly=True, copy=False, default=0)
    state = fields.Selection(STATES, required=True, default="draft", readonly=True, copy=False, index=True)
    line_ids = fields.One2many("ps.hub.mapping.line", "mapping_id", "Fields", copy=True)
    origin_id = fields.Many2one(
        "ps.hub.mapping", "Drafted From", readonly=True, copy=False, ondelete="set null",
        help="The version this draft was copied from.",
    )
    activated_by_id = fields.Many2one("res.users", "Activated By", readonly=True, copy=False)
    activated_at = fields.Datetime("Activated On", readonly=True, copy=False)
    archived_at = fields.Datetime("Archived On", readonly=True, copy=False)
    version_ids = fields.Many2many("ps.hub.mapping", string="Versions", compute="_compute_version_ids")
    event_count = fields.Integer("Events Mapped", compute="_compute_event_count")
    note = fields.Text(help="What this version changes, and why.")

    _one_active = models.UniqueIndex(
        "(system, COALESCE(connector_id, 0), external_object, direction, model_id) WHERE state = 'active'",
        "A mapping has one active version: activate a draft to replace it.")
    _one_draft = models.UniqueIndex(
        "(system, COALESCE(connector_id, 0), external_object, direction, model_id) WHERE state = 'draft'",
        "A mapping has one draft at a time: edit the draft that exists.")
    _version_unique = models.UniqueIndex(
        "(system, COALESCE(connector_id, 0), external_object, direction, model_id, version)",
        "Each version number of a mapping is used once.")

    @api.model
    def _selection_system(self):
        return self.env["ps.hub.connector"]._fields["system"]._description_selection(self.env)

    @api.depends("name", "version", "state")
    def _compute_display_name(self):
        states = dict(self._fields["state"]._description_selection(self.env))
        for mapping in self:
            mapping.display_name = f"{mapping.name} v{mapping.version} ({states.get(mapping.state, '')})"

    def _hub_identity_domain(self) -> list:
        self.ensure_one()
        return [("system", "=", self.system), ("connector_id", "=", self.connector_id.id),
                ("external_object", "=", self.external_object), ("direction", "=", self.direction),
                ("model_id", "=", self.model_id.id)]

    @api.depends(*IDENTITY)
    def _compute_version_ids(self):
        for mapping in self:
            if not mapping.system or not mapping.external_object:
                mapping.version_ids = False
                continue
            mapping.version_ids = self.search(mapping._hub_identity_domain(), order="version desc")

    def _compute_event_count(self):
        counts = dict(self.env["ps.hub.event"].sudo()._read_group(
            [("mapping_version_id", "in", self.ids)], ["mapping_version_id"], ["__count"]))
        for mapping in self:
            mapping.event_count = counts.get(mapping, 0)

    @api.constrains("connector_id", "system")
    def _check_connector(self):
        for mapping in self:
            if mapping.connector_id and mapping.connector_id.system != mapping.system:
                raise ValidationError(self.env._(
                    "Connector %(connector)s is not a %(system)s connector.",
                    connector=mapping.connector_id.name, system=mapping.system))

    # ------------------------------------------------------------------ versions

    @api.model_create_multi
    def create(self, vals_list):
        mappings = super().create(vals_list)
        for mapping in mappings:
            if not mapping.version:
                last = self.search(mapping._hub_identity_domain(), order="version desc", limit=1)
                mapping.with_context(**{TRANSITION: True}).version = (last.version or 0) + 1
        return mappings

    def write(self, vals):
        if not self.env.context.get(TRANSITION):
            if {"state", "activated_by_id", "activated_at", "archived_at", "origin_id"} & set(vals):
                raise UserError(self.env._("A mapping changes state through Activate and New Draft only."))
            frozen = self.filtered(lambda m: m.state != "draft")
            if frozen and DEFINITION & set(vals):
                raise UserError(self.env._(
                    "%s is not a draft: its fields cannot change. Use New Draft to make the next version.",
                    frozen[0].display_name))
        return super().write(vals)

    # at_uninstall=False: uninstalling the module whose data the versions are deletes them all,
    # active ones included (a refusal leaves them behind, their lines and value maps with them,
    # and the registry reads their dropped tables when it checks what is left)
    @api.ondelete(at_uninstall=False)
    def _unlink_except_not_draft(self):
        if any(mapping.state != "draft" for mapping in self):
            raise UserError(self.env._(
                "Only drafts are deleted: an active or archived version stays, to read what was applied."))

    @api.ondelete(at_uninstall=True)
    def _unlink_uninstall_release(self):
        """On a module uninstall only: let go of what refers to the versions with
        ``ondelete="restrict"`` (the events that were mapped by one, the push server actions),
        which otherwise fails the DELETE in PostgreSQL. Uninstalling the hub drops those events
        and actions anyway; uninstalling a module that brought mappings leaves the events that
        were mapped by them without their version, which is no more."""
        if not self.env.context.get(MODULE_UNINSTALL_FLAG):
            return
        self.env["ps.hub.event"]._hub_forget("mapping_version_id", self.ids)
        actions = self.env["ir.actions.server"].sudo().with_context(active_test=False).search(
            [("ps_hub_mapping_id", "in", self.ids)])
        actions.write({"ps_hub_mapping_id": False})

    def copy_data(self, default=None):
        default = dict(default or {})
        vals_list = super().copy_data(default)
        for mapping, vals in zip(self, vals_list, strict=True):
            vals.setdefault("origin_id", mapping.id)
        return vals_list

    def action_new_draft(self):
        """The draft of the next version, copied from this one (or the draft that exists)."""
        self.ensure_one()
        draft = self.search([*self._hub_identity_domain(), ("state", "=", "draft")], limit=1)
        if not draft:
            draft = self.with_context(**{TRANSITION: True}).copy({"version": 0})
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": draft.id,
                "view_mode": "form", "target": "current"}

    def action_activate(self):
        """Make this draft the active version; the version active until now is archived."""
        for mapping in self:
            if mapping.state != "draft":
                raise UserError(self.env._("%s is not a draft: only a draft is activated.", mapping.display_name))
            mapping._hub_compile()  # a draft that does not compile is not activated
            current = self.search([*mapping._hub_identity_domain(), ("state", "=", "active")])
            now = fields.Datetime.now()
            current.with_context(**{TRANSITION: True}).write({"state": "archived", "archived_at": now})
            self.env.flush_all()  # the unique index on the active version sees the archive first
            mapping.with_context(**{TRANSITION: True}).write(
                {"state": "active", "activated_by_id": self.env.uid, "activated_at": now})
        self.env.registry.clear_cache()
        return True

    def _hub_activate_seeds(self):
        """Activate these shipped first versions if they are still drafts and their mapping
        has no active version (data files call this at install and at each update)."""
        for mapping in self.filtered(lambda m: m.state == "draft"):
            if not self.search_count([*mapping._hub_identity_domain(), ("state", "=", "active")]):
                mapping.action_activate()

    def action_dry_run(self):
        """Open the dry-run of this draft on the last stored events of its object."""
        self.ensure_one()
        wizard = self.env["ps.hub.mapping.dry.run"].create({"mapping_id": self.id})
        wizard.action_run()
        return wizard._hub_action()

    def action_open_events(self):
        self.ensure_one()
        return {"type": "ir.actions.act_window", "name": self.display_name, "res_model": "ps.hub.event",
                "view_mode": "list,form", "domain": [("mapping_version_id", "=", self.id)]}

    # ------------------------------------------------------------------ compile and find

    def _hub_compile(self) -> mp.CompiledMapping:
        """This version's rules compiled for the engine (a UserError says what is wrong)."""
        self.ensure_one()
        mapping_sudo = self.sudo()
        rules, value_maps = [], {}
        for line in mapping_sudo.line_ids:
            target = line._hub_target()
            if not target:
                raise UserError(self.env._("Line %(path)s of %(mapping)s has no target.",
                                           path=line.source_path, mapping=self.display_name))
            transforms = ()
            if line.transform == "lookup":
                value_maps[line.value_map_id.code] = line.value_map_id._hub_table()
                transforms = (("lookup", line.value_map_id.code),)
            elif line.transform:
                transforms = ((line.transform, None),)
            default = line.default_value if line.default_value else mp.MISSING
            rules.append(mp.Rule(mp.Source(line.source_path, transforms, default, line.required), target))
        try:
            return mp.CompiledMapping(rules, value_maps, empty=False if self.direction == "in" else None)
        except mp.MappingError as exc:
            raise UserError(self.env._("%(mapping)s cannot be applied: %(error)s",
                                       mapping=self.display_name, error=exc)) from None

    def _hub_compiled(self) -> mp.CompiledMapping:
        """The compiled rules: cached for an active or archived version, which cannot change."""
        self.ensure_one()
        if self.state == "draft":
            return self._hub_compile()
        return self._hub_compiled_cached(self.id)

    @api.model
    @tools.ormcache("mapping_id")
    def _hub_compiled_cached(self, mapping_id: int) -> mp.CompiledMapping:
        return self.browse(mapping_id)._hub_compile()

    @api.model
    def _hub_active(self, connector, external_object: str, direction: str = "in", model: str | None = None):
        """The active version that maps ``external_object`` for ``connector``: its own, or its
        system's; of the Odoo ``model`` when given (an external object may be mapped from several)."""
        mapping_id = self._hub_active_id(connector.system, connector.id, external_object, direction, model)
        return self.browse(mapping_id).sudo() if mapping_id else self.browse()

    @api.model
    @tools.ormcache("system", "connector_id", "external_object", "direction", "model")
    def _hub_active_id(self, system, connector_id, external_object, direction, model=None):
        domain = [
            ("system", "=", system), ("external_object", "=", external_object), ("direction", "=", direction),
            ("state", "=", "active"), ("connector_id", "in", [connector_id, False]),
        ]
        if model:
            domain.append(("model", "=", model))
        found = self.sudo().search(domain, order="id")
        found = found.sorted(lambda m: not m.connector_id)[:1]  # the connector's own first
        return found.id or None

    # ------------------------------------------------------------------ apply

    def _hub_apply(self, source, partial: bool = False, compiled=None, lookups=None,
                   ownership: bool = True) -> mp.MapResult:
        """The mapping's result on ``source`` (a payload dict), its values filtered by the
        ownership rules unless ``ownership`` is False: the fields the system does not own
        are dropped (``result.dropped``).

        A value a value map has no entry for is matched by the map's match field (a legal
        entity by the company's name); ``lookups`` caches those searches across calls.
        """
        return self._hub_applier(compiled, lookups, ownership)(source, partial)

    def _hub_applier(self, compiled=None, lookups=None, ownership: bool = True):
        """``apply(source, partial=False) -> MapResult``: ``_hub_apply`` for many payloads, the
        mapping's settings read once (a dry-run or a batch applies it thousands of times)."""
        self.ensure_one()
        compiled = compiled or self._hub_compiled()
        lookups = {} if lookups is None else lookups
        ValueMap = self.env["ps.hub.value.map"].sudo()
        rules = None
        if ownership and self.direction == "in":
            rules = self.env["ps.hub.ownership.rule"]
        model, system = self.model, self.system

        def apply(source, partial: bool = False) -> mp.MapResult:
            result = compiled.apply(source, partial=partial)
            if result.unmatched:
                for target, (code, value) in list(result.unmatched.items()):
                    if ("map", code) not in lookups:
                        lookups["map", code] = ValueMap.search([("code", "=", code)], limit=1)
                    value_map = lookups["map", code]
                    record_id = value_map._hub_match(value, lookups) if value_map else None
                    if record_id:
                        result.values[target] = record_id
                        del result.errors[target], result.unmatched[target]
            if rules is not None and result.values:
                values, dropped = rules._hub_filter_inbound(model, system, result.values)
                result.values, result.dropped = dict(values), list(dropped)
            return result

        return apply

    def _hub_outbound_values(self, record) -> dict:
        """The vendor properties of ``record`` under this (outbound) version.

        Source paths walk the record's fields (``partner_id.vat``); a date is sent as ISO
        8601 text, a record as its display name. A value that cannot be mapped raises.
        """
        self.ensure_one()
        record.ensure_one()
        if self.direction != "out":
            raise UserError(self.env._("%s is not an outbound mapping.", self.display_name))
        if record._name != self.model:
            raise UserError(self.env._("%(mapping)s maps %(model)s records, not %(given)s.",
                                       mapping=self.display_name, model=self.model, given=record._name))
        document = self._hub_record_document(record, [line.source_path for line in self.line_ids])
        result = self._hub_applier()(document)
        if not result.ok:
            raise UserError(self.env._("%(record)s cannot be sent with %(mapping)s: %(problems)s",
                                       record=record.display_name, mapping=self.display_name,
                                       problems="; ".join(result.problems())))
        # Odoo's datetimes are naive UTC: sent with their zone, as the vendors document ISO 8601
        return {name: value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime)
                else value.isoformat() if isinstance(value, date) else value
                for name, value in result.values.items()}

    @api.model
    def _hub_record_document(self, record, paths) -> dict:
        """The values of ``record`` at ``paths`` (field names, dotted through relations), as a
        nested dict the engine reads: empty fields are None, records their display name."""
        document = {}
        for path in paths:
            keys = mp.parse_path(path)
            value, node = record, document
            for key in keys:
                if not isinstance(value, models.BaseModel) or key not in value._fields or len(value) > 1:
                    value = None
                    break
                value = value[key] if value else None
            if isinstance(value, models.BaseModel):
                value = value.display_name if len(value) == 1 else None
            elif value is False and not (keys and self._hub_is_boolean(record, keys)):
                value = None
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
        return document

    @api.model
    def _hub_is_boolean(self, record, keys) -> bool:
        model = record
        for key in keys[:-1]:
            field = model._fields.get(key)
            if not field or not field.relational:
                return False
            model = self.env[field.comodel_name]
        field = model._fields.get(keys[-1])
        return bool(field) and field.type == "boolean"

    # ------------------------------------------------------------------ dry-run

    def _hub_stored_events(self, limit: int):
        """The last ``limit`` stored events of this mapping's object (inbound: what the vendor
        sent; outbound: the pushes of its records)."""
        self.ensure_one()
        domain = Domain([("system", "=", self.system), ("direction", "=", self.direction),
                         ("event_type_id.binding_model", "=", self.external_object)])
        if self.direction == "out":
            domain = Domain([("system", "=", self.system), ("direction", "=", "out"), ("res_model", "=", self.model)])
        if self.connector_id:
            domain &= Domain("connector_id", "=", self.connector_id.id)
        return self.env["ps.hub.event"].sudo().search(domain, order="id desc", limit=limit)

    @api.model
    def _hub_event_rows(self, events) -> dict:
        """{event id: EventRow} of stored events, read in one query: a dry-run replays thousands,
        and a field read through the ORM costs each event more than the mapping does."""
        if not events:
            return {}
        Event = self.env["ps.hub.event"]
        Event.flush_model(["connector_id", "event_type_id", "external_id", "res_model", "res_id", "payload"])
        self.env.cr.execute(SQL(
            "SELECT id, connector_id, event_type_id, external_id, res_model, res_id, payload "
            "FROM ps_hub_event WHERE id IN %s", tuple(events.ids)))
        rows = {row[0]: EventRow(*row) for row in self.env.cr.fetchall()}
        types = self.env["ps.hub.event.type"].sudo().with_context(active_test=False).browse(
            {row.event_type_id for row in rows.values() if row.event_type_id})
        kinds = {t.id: (t.binding_model, t.handler_model) for t in types}
        for row in rows.values():
            row.binding_model, row.handler_model = kinds.get(row.event_type_id, (None, None))
        return rows

    def _hub_event_records(self, events, rows=None) -> dict:
        """{event id: the record of this mapping's model the event concerns, or None}: the
        record the event produced, else the one bound to its external id."""
        self.ensure_one()
        rows = self._hub_event_rows(events) if rows is None else rows
        Model = self.env[self.model].sudo()
        found, unbound = {}, defaultdict(list)
        for row in rows.values():
            if row.res_model == self.model and row.res_id:
                found[row.id] = row.res_id
            elif row.external_id and row.binding_model:
                unbound[row.connector_id, row.binding_model].append(row)
        for (connector_id, external_model), of_key in unbound.items():
            bound = {b.external_id: b.res_id for b in self.env["ps.hub.binding"].sudo().search([
                ("connector_id", "=", connector_id), ("external_model", "=", external_model),
                ("external_id", "in", [row.external_id for row in of_key]), ("res_model", "=", self.model)])}
            for row in of_key:
                if row.external_id in bound:
                    found[row.id] = bound[row.external_id]
        # records taken from one recordset share its prefetch: one read per field for all of them
        by_id = {record.id: record for record in Model.browse(set(found.values())).exists()}
        return {event_id: by_id.get(found.get(event_id)) for event_id in events.ids}

    def _hub_event_sources(self, events, rows=None) -> dict:
        """{event id: (source document, partial) or None} as the event's handler reads it."""
        self.ensure_one()
        rows = self._hub_event_rows(events) if rows is None else rows
        sources = {}
        if self.direction == "out":
            paths = [line.source_path for line in self.line_ids]
            records = self._hub_event_records(events, rows)
            for event_id in events.ids:
                record = records[event_id]
                sources[event_id] = (self._hub_record_document(record, paths), False) if record else None
            return sources
        handlers = {}
        for event in events:
            row = rows.get(event.id)
            if row is None or not row.handler_model or row.handler_model not in self.env:
                sources[event.id] = None
                continue
            if row.handler_model not in handlers:
                handlers[row.handler_model] = self.env[row.handler_model]
            payload = row.payload if isinstance(row.payload, dict) else None
            sources[event.id] = handlers[row.handler_model]._hub_mapping_source(event, self, payload) \
                if payload is not None else None
        return sources

    @api.model
    def _hub_record_values(self, record, names) -> dict:
        """The current values of ``record``'s fields ``names``, as the engine gives them (a
        many2one as an id, an empty field as False)."""
        values = {}
        for name in names:
            field = record._fields.get(name)
            if field is None:
                continue
            value = record[name]
            if field.type == "many2one":
                value = value.id or False
            elif field.type in ("one2many", "many2many"):
                value = value.ids
            values[name] = value
        return values

    def _hub_dry_run(self, events, compare=None) -> list[dict]:
        """What this version would make of ``events``, writing nothing.

        Per event: the values (``result``), the fields it would change on the event's record
        (``changes``: {field: (now, would be)}), the fields whose value differs from what
        ``compare`` (another version, by default the active one) gives (``differs``), and
        the fields that would fail.
        """
        self.ensure_one()
        if compare is None:
            compare = self.search([*self._hub_identity_domain(), ("state", "=", "active")], limit=1)
        compare = compare if compare and compare != self else None
        lookups = {}
        apply = self._hub_applier(lookups=lookups)
        apply_compared = compare._hub_applier(lookups=lookups) if compare else None
        rows = self._hub_event_rows(events)
        sources = self._hub_event_sources(events, rows)
        records = self._hub_event_records(events, rows) if self.direction == "in" else {}
        report = []
        for event in events:
            found = sources.get(event.id)
            row = {"event": event, "record": records.get(event.id), "result": None, "changes": {}, "differs": {},
                   "mapped": found is not None}
            report.append(row)
            if found is None:
                continue
            source, partial = found
            result = row["result"] = apply(source, partial)
            if apply_compared is not None:
                before = apply_compared(source, partial)
                row["differs"] = mp.changes(result.values, before.values)
                failed = set(result.failed)  # said in the errors, not as a difference
                for name in before.values.keys() - result.values.keys() - failed:
                    row["differs"][name] = (before.values[name], None)
            record = row["record"]
            if record is not None and result.values:
                row["changes"] = mp.changes(result.values, self._hub_record_values(record, result.values))
        return report


class PsHubMappingLine(models.Model):
    _name = "ps.hub.mapping.line"
    _description = "Integration Field Mapping Line"
    _order = "mapping_id, sequence, id"

    mapping_id = fields.Many2one("ps.hub.mapping", required=True, index=True, ondelete="cascade")
    sequence = fields.Integer(default=10)
    direction = fields.Selection(related="mapping_id.direction")
    model_id = fields.Many2one(related="mapping_id.model_id")
    source_path = fields.Char(
        "Source", required=True,
        help="Where the value is read: a dotted path (properties.name) or a JSON pointer "
             "(/properties/name). Outbound: the record's field path (partner_id.vat).",
    )
    field_id = fields.Many2one(
        "ir.model.fields", "Odoo Field", ondelete="cascade",
        domain="[('model_id', '=', model_id), ('store', '=', True), "
               "('ttype', 'not in', ('one2many', 'many2many', 'binary'))]",
        help="The field that receives the value (inbound mappings).",
    )
    target_property = fields.Char(
        "Vendor Property", help="The vendor's property that receives the value (outbound mappings).",
    )
    transform = fields.Selection(
        [("strip", "Strip spaces"), ("upper", "UPPER CASE"), ("lower", "lower case"), ("title", "Title Case"),
         ("date", "Date"), ("datetime", "Date and time"), ("money", "Money (2 decimals)"),
         ("boolean", "Yes / No"), ("url", "Web address"), ("lookup", "Look up in a value map")],
        help="Date and Date and time read ISO 8601 and epoch milliseconds; Money rejects text that is "
             "not a number; Yes / No reads true/yes/1/on and false/no/0/off.",
    )
    value_map_id = fields.Many2one("ps.hub.value.map", "Value Map", ondelete="restrict")
    default_value = fields.Char(
        "Default", help="The source value assumed when the payload has none (it goes through the transform).",
    )
    required = fields.Boolean(help="Without a value, the event fails instead of writing an empty field.")

    @api.constrains("source_path", "transform", "value_map_id", "field_id", "target_property")
    def _check_line(self):
        for line in self:
            try:
                mp.parse_path(line.source_path)
            except mp.MappingError as exc:
                raise ValidationError(str(exc)) from None
            if line.transform == "lookup" and not line.value_map_id:
                raise ValidationError(self.env._("Line %s looks up a value map: choose it.", line.source_path))
            if line.field_id and line.field_id.model_id != line.mapping_id.model_id:
                raise ValidationError(self.env._(
                    "Field %(field)s is not a field of %(model)s.",
                    field=line.field_id.name, model=line.mapping_id.model))

    def _hub_target(self) -> str | None:
        self.ensure_one()
        return self.field_id.name if self.mapping_id.direction == "in" else (self.target_property or "").strip()

    def _hub_check_draft(self, mappings):
        frozen = mappings.filtered(lambda m: m.state != "draft")
        if frozen and not self.env.context.get(TRANSITION):
            raise UserError(self.env._(
                "%s is not a draft: its fields cannot change. Use New Draft to make the next version.",
                frozen[0].display_name))

    @api.model_create_multi
    def create(self, vals_list):
        self._hub_check_draft(self.env["ps.hub.mapping"].browse({v.get("mapping_id") for v in vals_list} - {None}))
        return super().create(vals_list)

    def write(self, vals):
        self._hub_check_draft(self.mapping_id)
        if "mapping_id" in vals:
            self._hub_check_draft(self.env["ps.hub.mapping"].browse(vals["mapping_id"]))
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_not_draft(self):
        self._hub_check_draft(self.mapping_id)
