import logging

from odoo import models

from odoo.addons.ps_integration_hub.services import outcome as oc
from odoo.addons.ps_integration_hub.services.errors import BusinessError, HubError, IgnoreEvent, PermanentError

from ..services import hubspot

_logger = logging.getLogger(__name__)


class PsQ2cHubspotCompanyHandler(models.AbstractModel):
    """HubSpot company.creation and company.propertyChange -> the bound customer upserted
    from the webhook's value (an unbound company is read and matched first)."""

    _name = "ps.q2c.hubspot.company.handler"
    _inherit = "ps.hub.handler"
    _description = "Quote to Cash: HubSpot company change"

    def process(self, events):
        """Upsert the customers of many company events: one search, one read, one create.

        A bound company's customer takes the webhook's value, read through the active
        mapping of HubSpot companies (Integration Hub > Configuration > Mappings). An
        unbound company is read from HubSpot and matched (binding, VAT, domain) as a deal's
        company is; only a customer found nowhere is created. Several events of one company
        come in their order: their values are merged in that order (the later wins) and each
        customer is written once. Each event records the mapping version that read it.
        """
        results, changes, asked, mapped = self._q2c_company_changes(events)
        to_write, not_applied = self._q2c_values_to_write(changes)
        for partner, values in to_write.items():
            partner.write(values)
        if not_applied:
            self._q2c_report_not_applied(results, asked, not_applied)
        return self._q2c_note_mapping(events, results, mapped)

    def _q2c_values_to_write(self, changes):
        """({partner: values}, {partner id: fields not applied}): the values of the customers
        whose ``changes`` differ from what they hold, the fields HubSpot does not own left out
        (ownership rules), and those fields."""
        to_write, not_applied = {}, {}
        for partner, asked_values in changes.items():
            values, dropped = self.env["ps.hub.ownership.rule"]._hub_filter_inbound(
                "res.partner", "hubspot", asked_values)
            if dropped:
                not_applied[partner.id] = set(dropped)
            if any(partner[name] != value for name, value in values.items()):
                to_write[partner] = values
        return to_write, not_applied

    def _q2c_note_mapping(self, events, results, mapped):
        """``results`` as outcomes that record the mapping version of the events it read."""
        for event in events:
            if event.id in mapped and event.id in results:
                results[event.id] = oc.outcome_of(results[event.id], event.attempts).mapped_by(mapped[event.id])
        return results

    def _q2c_company_changes(self, events, read_unbound=True):
        """What company events ask, writing nothing: ({event id: result}, {partner: values},
        {event id: the fields it asked}, {event id: the mapping version that read it}).

        ``read_unbound`` False leaves the companies that are not bound yet without result
        (they need HubSpot): what a benchmark of the mapping without a vendor measures.
        """
        results, changes, asked, mapped, lookups = {}, {}, {}, {}, {}
        Binding = self.env["ps.hub.binding"]
        for connector, of_connector in events.grouped("connector_id").items():
            mapping = self.env["ps.hub.mapping"]._hub_active(connector, "company", model="res.partner")
            # the ownership rules apply to the values merged per customer (_q2c_values_to_write)
            apply = mapping._hub_applier(lookups=lookups, ownership=False) \
                if mapping and mapping.model == "res.partner" else None
            payloads = {e.id: e.payload or {} for e in of_connector}  # each read copies the JSON
            company_ids = {e.id: str(payloads[e.id].get("objectId") or "") for e in of_connector}
            bindings_sudo = Binding.sudo().search([
                ("connector_id", "=", connector.id), ("external_model", "=", "company"),
                ("external_id", "in", list(company_ids.values())), ("res_model", "=", "res.partner")])
            bound = {b.external_id: b for b in bindings_sudo}
            partners = self.env["res.partner"].browse([b.res_id for b in bound.values()]).exists()
            partner_of = {partner.id: partner for partner in partners}
            first = self._q2c_first_bindings(connector, partners)
            unbound = []
            for event in of_connector:
                payload, company_id = payloads[event.id], company_ids[event.id]
                if not company_id.isdigit():
                    results[event.id] = PermanentError(
                        f"HubSpot company id {company_id!r} is not numeric", reason="malformed")
                    continue
                values = {}
                found = self._hub_mapping_source(event, mapping, payload)
                if found is not None:
                    if apply is None:
                        results[event.id] = BusinessError(
                            f"No active mapping reads HubSpot companies into customers for connector "
                            f"{connector.name}: activate one in Integration Hub > Configuration > Mappings, "
                            "then retry.", reason="no_mapping")
                        continue
                    mapped[event.id] = mapping.id
                    result = apply(*found)
                    if not result.ok:
                        results[event.id] = BusinessError(
                            f"HubSpot company {company_id}: {'; '.join(result.problems())}. Correct the value in "
                            f"HubSpot or the mapping {mapping.display_name}, then retry.", reason="mapping_failed")
                        continue
                    if not result.values:
                        results[event.id] = IgnoreEvent(
                            f"HubSpot property {payload.get('propertyName')!r} is not synchronised")
                        continue
                    values = result.values
                asked[event.id] = set(values)
                binding = bound.get(company_id)
                partner = binding and partner_of.get(binding.res_id)
                if not partner:
                    unbound.append((event, company_id, values))
                elif first[partner.id] != binding:
                    # two HubSpot companies of one customer would overwrite each other's values
                    results[event.id] = IgnoreEvent(
                        f"HubSpot company {company_id} is a duplicate of company {first[partner.id].external_id}, "
                        f"both {partner.display_name} in Odoo: only company {first[partner.id].external_id} "
                        "is synchronised. Merge the two companies in HubSpot.")
                else:
                    changes.setdefault(partner, {}).update(values)
                    results[event.id] = partner
            if unbound and read_unbound:
                results.update(self._q2c_match_hubspot_companies(connector, unbound, changes))
        return results, changes, asked, mapped

    def _hub_mapping_source(self, event, mapping, payload=None):
        """A property change carries one property: the mapping reads it as the company's
        ``properties`` (as HubSpot's CRM API answers them), partially. A creation carries none."""
        payload = (event.payload or {}) if payload is None else payload
        if payload.get("subscriptionType") != "company.propertyChange" or not payload.get("propertyName"):
            return None
        return {"properties": {payload["propertyName"]: payload.get("propertyValue")}}, True

    def _q2c_report_not_applied(self, results, asked, not_applied):
        """Say so on the events whose change the ownership rules kept out of the customer.

        None of its change applied: the event is ignored with the fields and their owner
        (reason ``owned_field``), and still points to its customer. Part of it applied: the
        event is done, with a note of what was not.
        """
        Rules = self.env["ps.hub.ownership.rule"]
        for event_id, names in asked.items():
            partner = results.get(event_id)
            if not isinstance(partner, models.BaseModel) or not names:
                continue
            dropped = sorted(names & not_applied.get(partner.id, set()))
            if not dropped:
                continue
            message = Rules._hub_dropped_message("res.partner", "hubspot", dropped)
            _logger.info("ps_quote_to_cash: event %s, customer %s: %s", event_id, partner.id, message)
            if len(dropped) == len(names):
                results[event_id] = oc.Outcome(oc.IGNORED, reason="owned_field", message=message,
                                               res_model=partner._name, res_id=partner.id,
                                               context=oc.clean_context({"customer": partner.display_name}))
            else:
                self.env["ps.hub.event"].browse(event_id).sudo()._message_log(body=message)

    def _q2c_first_bindings(self, connector, partners):
        """{partner id: its first HubSpot company binding}: the one whose changes are synchronised."""
        first = {}
        if partners:
            for binding in self.env["ps.hub.binding"].sudo().search([
                    ("connector_id", "=", connector.id), ("external_model", "=", "company"),
                    ("res_model", "=", "res.partner"), ("res_id", "in", partners.ids)], order="id"):
                first.setdefault(binding.res_id, binding)
        return first

    def _q2c_match_hubspot_companies(self, connector, unbound, changes):
        """{event id: partner | error} of [(event, company id, values)] for companies not bound yet.

        The webhook names the company only: HubSpot is read (one batch read) for what the
        matching needs, so that a new company already known to Odoo by VAT or domain gets
        that customer, not a placeholder beside it.
        """
        ids = sorted({company_id for _e, company_id, _v in unbound})
        try:
            answer = connector._hub_request(
                "POST", "/crm/v3/objects/companies/batch/read",
                json={"inputs": [{"id": i} for i in ids], "properties": hubspot.COMPANY_PROPERTIES},
            ).json()
            companies = {str(c["id"]): c for c in answer.get("results", [])}
            customers = [hubspot.customer(companies[i]) for i in ids if i in companies]
            created = set()
            resolved = self.env["ps.q2c.engagement"]._q2c_customers(
                connector, connector.company_id, customers, created=created)
        except HubError as exc:
            return {event.id: exc for event, _c, _v in unbound}
        except (KeyError, TypeError, AttributeError) as exc:
            error = PermanentError(f"HubSpot answered companies {ids} in an unexpected shape: {exc!r}",
                                   reason="malformed")
            return {event.id: error for event, _c, _v in unbound}
        results = {}
        for event, company_id, values in unbound:
            partner = resolved.get(company_id)
            if company_id not in companies:
                partner = IgnoreEvent(f"HubSpot company {company_id} no longer exists (deleted or merged): "
                                      "nothing to synchronise")
            elif not isinstance(partner, Exception) and company_id not in created:
                # a customer created from the read has HubSpot's current values already
                changes.setdefault(partner, {}).update(values)
            results[event.id] = partner
        return results
