import logging
from functools import reduce

from odoo import api, fields, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)


class IrActionsServer(models.Model):
    """A "Push to connector" server action: queues a push of the record's values to the
    external object bound to it (or to a record reached from it), in the transaction that runs
    the action. The connector's workers make the call after it commits."""

    _inherit = "ir.actions.server"

    state = fields.Selection(
        selection_add=[("ps_hub_push", "Push to Connector")], ondelete={"ps_hub_push": "cascade"},
    )
    ps_hub_connector_id = fields.Many2one(
        "ps.hub.connector", "Connector", ondelete="restrict",
        help="The external system the values are pushed to.",
    )
    ps_hub_mapping_id = fields.Many2one(
        "ps.hub.mapping", "Outbound Mapping", ondelete="restrict",
        domain="[('direction', '=', 'out'), ('state', '!=', 'archived'), ('model_id', '=', model_id)]",
        help="Which vendor properties the record's values go to. The push uses the mapping's active "
             "version at the time it is queued (Integration Hub > Configuration > Mappings), and the "
             "event records that version.",
    )
    ps_hub_external_model = fields.Char(
        "External Object", related="ps_hub_mapping_id.external_object",
        help="The vendor's object type, as bindings name it: deal, company, contact (HubSpot), "
             "Opportunity, Account (Salesforce). The mapping's.",
    )
    ps_hub_binding_path = fields.Char(
        "Bound Record",
        help="Path of fields from the record to the record bound to the external object, e.g. "
             "invoice_line_ids.sale_line_ids.order_id from an invoice to its sale orders, which are bound "
             "to the CRM deals they came from. Empty: the record itself is bound.",
    )

    def _name_depends(self):
        return [*super()._name_depends(), "ps_hub_connector_id", "ps_hub_mapping_id"]

    def _generate_action_name(self):
        self.ensure_one()
        if self.state == "ps_hub_push" and self.ps_hub_connector_id:
            return self.env._("Push to %(connector)s %(object)s", connector=self.ps_hub_connector_id.name,
                              object=self.ps_hub_external_model or "")
        return super()._generate_action_name()

    @api.model
    def _warning_depends(self):
        return [*super()._warning_depends(), "ps_hub_connector_id", "ps_hub_mapping_id",
                "ps_hub_binding_path"]

    def _get_warning_messages(self):
        self.ensure_one()
        warnings = super()._get_warning_messages()
        if self.state != "ps_hub_push":
            return warnings
        if not self.ps_hub_connector_id or not self.ps_hub_mapping_id:
            warnings.append(self.env._("Choose the connector and the outbound mapping of the push."))
        elif self._ps_hub_mapping_error():
            warnings.append(self._ps_hub_mapping_error())
        if self.model_id and self.ps_hub_binding_path and self._ps_hub_path_error():
            warnings.append(self._ps_hub_path_error())
        return warnings

    def _ps_hub_path_error(self) -> str | None:
        """Why the bound record path does not lead from the action's model to records, if it does not."""
        model = self.env[self.model_id.model]
        for name in self.ps_hub_binding_path.split("."):
            field = model._fields.get(name)
            if field is None or not field.relational:
                return self.env._("%(path)s is not a path of relational fields of %(model)s.",
                                  path=self.ps_hub_binding_path, model=self.model_id.model)
            model = self.env[field.comodel_name]
        return None

    def _run_action_ps_hub_push_multi(self, eval_context=None):
        """Queue the pushes of the records the action runs on (no call to the vendor here)."""
        records = (eval_context or {}).get("records") or (eval_context or {}).get("record")
        if records:
            self._ps_hub_enqueue(records)
        return False

    def _ps_hub_enqueue(self, records):
        """Queue one push per record and bound external object; return the outbound events."""
        self.ensure_one()
        path = (self.ps_hub_binding_path or "").strip()
        targets = {record: record.mapped(path) if path else record for record in records}
        all_targets = reduce(lambda a, b: a | b, targets.values())
        external_of = dict(zip(all_targets.ids, self.env["ps.hub.event"]._hub_bound_external_ids(
            self.ps_hub_connector_id, all_targets, self.ps_hub_external_model), strict=True))
        sources, external_ids, values = [], [], []
        for record, bound_records in targets.items():
            record_values = None
            for external_id in dict.fromkeys(external_of[target.id] for target in bound_records):
                if not external_id:
                    continue
                if record_values is None:
                    record_values = self._ps_hub_push_values(record)
                sources.append(record.id)
                external_ids.append(external_id)
                values.append(record_values)
        if not sources:
            _logger.info("ps_hub: %s: no %s bound on connector %s for %s, nothing pushed", self.name,
                         self.ps_hub_external_model, self.ps_hub_connector_id.name, records)
            return self.env["ps.hub.event"]
        return self.env["ps.hub.event"]._hub_enqueue_push(
            self.ps_hub_connector_id, records.browse(sources), self.ps_hub_external_model, values,
            external_ids=external_ids, mapping=self._ps_hub_mapping())

    def _ps_hub_mapping(self):
        """The active version of the action's outbound mapping for its connector, or nothing."""
        self.ensure_one()
        mapping = self.ps_hub_mapping_id
        if not mapping or not self.ps_hub_connector_id:
            return self.env["ps.hub.mapping"]
        return self.env["ps.hub.mapping"]._hub_active(self.ps_hub_connector_id, mapping.external_object, "out",
                                                      model=mapping.model)

    def _ps_hub_mapping_error(self) -> str | None:
        """Why the action's mapping cannot give its connector's pushes, if it cannot."""
        mapping, connector = self.ps_hub_mapping_id.sudo(), self.ps_hub_connector_id.sudo()
        if mapping.system != connector.system or (mapping.connector_id and mapping.connector_id != connector):
            return self.env._("The mapping %(mapping)s is not one of connector %(connector)s.",
                              mapping=mapping.display_name, connector=connector.display_name)
        active = self._ps_hub_mapping()
        if not active:
            return self.env._("The mapping %s has no active version: activate one.", mapping.display_name)
        if self.model_id and active.model != self.model_id.model:
            return self.env._("The active version of %(mapping)s maps %(mapped)s records, not %(model)s.",
                              mapping=active.display_name, mapped=active.model, model=self.model_id.model)
        return None

    def _ps_hub_push_values(self, record) -> dict:
        """The vendor properties this action pushes for ``record``: the active version of its
        outbound mapping applied to the record."""
        self.ensure_one()
        mapping = self._ps_hub_mapping()
        if not mapping:
            raise UserError(self._ps_hub_mapping_error() or self.env._("No outbound mapping is set."))
        return mapping._hub_outbound_values(record)
