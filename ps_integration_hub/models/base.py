from odoo import api, models
from odoo.exceptions import UserError

from ..services import ownership
from ..services.ownership import ODOO


class _IntegrationMark(int):
    """The context value that marks the integration's own writes (``ps_hub_integration``).

    Checked by identity: a client can put ``ps_hub_integration: true`` in the context of an
    RPC call, but not this object, so no user gets around the ownership rules that way. It
    equals nothing but itself (a context holding ``True`` must not find the environment of
    one holding this object), and is an int so that a context holding it still serializes.
    """

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return "INTEGRATION"


INTEGRATION = _IntegrationMark(1)
INTEGRATION_KEY = "ps_hub_integration"


class Base(models.AbstractModel):
    """Field ownership (ps.hub.ownership.rule) enforced on every model's writes.

    Nearly free where no rule applies: a superuser environment (module install and upgrade,
    the system's own jobs), the integration's writes and a registry still loading are not
    checked at all; otherwise one cached dict lookup by model name.
    """

    _inherit = "base"

    def _hub_as_integration(self):
        """These records in an environment whose writes are the integration's: they may change
        the fields an external system owns. For code that writes on behalf of a vendor."""
        return self.with_context(**{INTEGRATION_KEY: INTEGRATION})

    def _hub_owned_fields_of_model(self) -> dict | None:
        """{field name: Owned} of this model's rules, when a user's write must be checked."""
        if self.env.su or not self.pool.ready or self.env.context.get(INTEGRATION_KEY) is INTEGRATION:
            return None
        return self.env["ps.hub.ownership.rule"]._hub_owned_fields().get(self._name)

    @api.model_create_multi
    def create(self, vals_list):
        owned = self._hub_owned_fields_of_model()
        if owned:
            self._hub_check_owned_create(owned, vals_list)
        return super().create(vals_list)

    def write(self, vals):
        self._hub_check_ownership(vals)
        return super().write(vals)

    def _hub_check_ownership(self, vals):
        """Refuse a user's change of a field an external system owns on these records.

        Only a change counts: a value equal to the stored one passes (forms and imports send
        them back). Called by write(); a model whose write hands fields to other records
        before they reach it (hr.employee to its version) calls it first, with all of them.
        """
        if not self or not vals:
            return
        owned = self._hub_owned_fields_of_model()
        if not owned:
            return
        names = [name for name in vals if name in owned and owned[name].owner != ODOO]
        if not names:
            return
        changed = {name: self._hub_changed_by(name, vals[name]) for name in names}
        bound = {}  # (owner, external object type): the changed records bound to the owner
        refused = {}  # owner: (field names, records)
        for name in names:
            rule, records = owned[name], changed[name]
            if records and rule.scope == "bound":
                key = (rule.owner, rule.external_model)
                if key not in bound:
                    candidates = self.browse().union(*(
                        changed[other] for other in names
                        if (owned[other].owner, owned[other].external_model) == key))
                    bound[key] = candidates._hub_bound_to(*key)
                records &= bound[key]
            if records:
                fields_of, records_of = refused.get(rule.owner, ([], self.browse()))
                refused[rule.owner] = ([*fields_of, name], records_of | records)
        if refused:
            owner = min(refused)
            self._hub_refuse(owner, *refused[owner])

    def _hub_check_owned_create(self, owned, vals_list):
        """A new record gets no value other than the default in a field an external system
        owns for all records (a rule scoped to synchronised records does not apply to a
        record that is not synchronised yet)."""
        names = {name for name, rule in owned.items() if rule.owner != ODOO and rule.scope == "all"}
        given = sorted(names & {name for vals in vals_list for name in vals})
        if not given:
            return
        defaults = self.default_get(given)
        for owner in sorted({owned[name].owner for name in given}):
            refused = []
            for name in given:
                if owned[name].owner != owner:
                    continue
                field = self._fields.get(name)
                if field is not None and field.type in ("one2many", "many2many"):
                    default = ownership.x2many_ids_after((), defaults.get(name) or ())
                    differs = any(name in vals and ownership.x2many_ids_after((), vals[name]) != default
                                  for vals in vals_list)
                else:
                    default = self._hub_cache_value(field, defaults.get(name, False), self.browse())
                    differs = any(name in vals and self._hub_cache_value(field, vals[name], self.browse()) != default
                                  for vals in vals_list)
                if differs:
                    refused.append(name)
            if refused:
                self._hub_refuse(owner, refused, self.browse())

    def _hub_changed_by(self, name, value):
        """The records of ``self`` whose field ``name`` the written ``value`` changes."""
        field = self._fields.get(name)
        if field is None:
            return self.browse()
        if field.type in ("one2many", "many2many"):
            changed = self.browse()
            for record in self:
                current = set(record[name].ids)
                after = ownership.x2many_ids_after(current, value)
                if after is None or after != current:
                    changed |= record
            return changed
        return self.filtered(lambda record: self._hub_cache_value(field, value, record)
                             != self._hub_cache_value(field, record[name], record))

    @api.model
    def _hub_cache_value(self, field, value, record):
        """``value`` of ``field`` as comparable: what the ORM would store, empty as None."""
        if field is None:
            return value
        if isinstance(value, models.BaseModel):
            return value.id or None  # a many2one's value (x2many are compared by ids)
        try:
            value = field.convert_to_cache(value, record)
        except (ValueError, TypeError):
            return value  # not a value this field takes: the write itself will say so
        if field.type in ("integer", "float", "monetary"):
            return value
        return value or None

    def _hub_bound_to(self, system: str, external_model: str | None = None):
        """The records of ``self`` bound to an active connector of ``system`` (as ``external_model``)."""
        connectors = self.env["ps.hub.connector"].sudo().search([("system", "=", system)])
        if not connectors or not self:
            return self.browse()
        domain = [("connector_id", "in", connectors.ids), ("res_model", "=", self._name),
                  ("res_id", "in", self.ids)]
        if external_model:
            domain.append(("external_model", "=", external_model))
        bound = set(self.env["ps.hub.binding"].sudo().search(domain).mapped("res_id"))
        return self.filtered(lambda record: record.id in bound)

    def _hub_refuse(self, owner: str, names: list[str], records):
        """Raise the UserError that names the fields, their records and their owner."""
        Rule = self.env["ps.hub.ownership.rule"]
        labels = [self._fields[name]._description_string(self.env) if name in self._fields else name
                  for name in names]
        if len(labels) > 1:
            labels = [self.env._("%(fields)s and %(field)s", fields=", ".join(labels[:-1]), field=labels[-1])]
        subject = self._description
        if records:
            shown = ", ".join(records[:3].mapped("display_name"))
            subject = f"{subject} {shown}" + (", ..." if len(records) > 3 else "")
        owner_label = Rule._hub_owner_label(owner)
        if len(names) > 1:
            message = self.env._(
                "%(fields)s of %(subject)s are owned by %(owner)s: change them in %(owner)s; the "
                "integration brings the change here.", fields=labels[0], subject=subject, owner=owner_label)
        else:
            message = self.env._(
                "%(field)s of %(subject)s is owned by %(owner)s: change it in %(owner)s; the "
                "integration brings the change here.", field=labels[0], subject=subject, owner=owner_label)
        raise UserError(message)
