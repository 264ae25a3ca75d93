from urllib.parse import quote

from odoo import models

from odoo.addons.ps_integration_hub.services.errors import BusinessError, IgnoreEvent, PermanentError

from ..services import hubspot, salesforce


class PsHubEvent(models.Model):
    _inherit = "ps.hub.event"

    def _hub_handlers(self):
        handlers = super()._hub_handlers()
        handlers[("hubspot", "deal.propertyChange")] = type(self)._q2c_handle_hubspot_deal
        handlers[("salesforce", "Opportunity.outbound_message")] = type(self)._q2c_handle_salesforce_opportunity
        handlers[("hubspot", "company.propertyChange")] = type(self)._q2c_handle_hubspot_company_change
        handlers[("hubspot", "company.creation")] = type(self)._q2c_handle_hubspot_company_change
        return handlers

    def _q2c_bound_order(self, deal_model):
        """The order a replayed or repeated closed-won already produced."""
        return self.env["ps.hub.binding"]._hub_lookup(self.connector_id, deal_model, self.external_id)

    def _q2c_handle_hubspot_deal(self):
        """deal.propertyChange to closedwon -> read the deal from HubSpot -> order and project."""
        payload = self.payload or {}
        if not hubspot.is_closed_won(payload):
            raise IgnoreEvent(
                f"deal {payload.get('objectId')}: {payload.get('propertyName')} changed to "
                f"{payload.get('propertyValue')!r}, not a closed-won"
            )
        deal_id = str(payload.get("objectId") or "")
        if not deal_id.isdigit():
            raise PermanentError(f"HubSpot deal id {deal_id!r} is not numeric", reason="malformed")
        existing = self._q2c_bound_order("deal")
        if existing:
            return existing
        connector = self.connector_id
        try:
            deal = connector._hub_request(
                "GET", f"/crm/v3/objects/deals/{deal_id}",
                params={"associations": "companies,contacts,line_items",
                        "properties": ",".join(hubspot.DEAL_PROPERTIES)},
            ).json()
        except PermanentError as exc:
            if exc.reason != "remote_not_found":
                raise
            raise BusinessError(
                f"Deal {deal_id} no longer exists in HubSpot (deleted or merged): restore it and retry, "
                "or ignore this event.", reason="deal_not_found") from None
        props = deal.get("properties") or {}
        self._hub_note_context(reference=props.get("dealname"), currency=props.get("deal_currency_code"),
                               amount=float(props["amount"]) if props.get("amount") else None)
        company_ids = hubspot.association_ids(deal, "companies")
        if not company_ids:
            raise BusinessError(f"Deal {deal_id} has no associated company: associate one in HubSpot "
                                "and retry.", reason="missing_customer")
        company = connector._hub_request("GET", f"/crm/v3/objects/companies/{quote(company_ids[0])}").json()
        self._hub_note_context(customer=(company.get("properties") or {}).get("name"))
        contact_ids = hubspot.association_ids(deal, "contacts")
        contact = (connector._hub_request("GET", f"/crm/v3/objects/contacts/{quote(contact_ids[0])}").json()
                   if contact_ids else None)
        line_ids = hubspot.association_ids(deal, "line_items")
        items = []
        if line_ids:
            items = connector._hub_request(
                "POST", "/crm/v3/objects/line_items/batch/read",
                json={"inputs": [{"id": i} for i in line_ids], "properties": hubspot.LINE_PROPERTIES},
            ).json().get("results", [])
            missing = set(line_ids) - {str(i["id"]) for i in items}
            if missing:
                raise BusinessError(f"HubSpot did not return line items {sorted(missing)} of deal {deal_id}.",
                                    reason="missing_line_items")
        try:
            engagement = hubspot.engagement(deal, company, contact, items)
        except (KeyError, ValueError) as exc:
            raise PermanentError(f"HubSpot deal {deal_id} cannot be read: {exc}", reason="malformed") from None
        return self.env["ps.q2c.engagement"]._q2c_apply(self, engagement)

    def _q2c_handle_hubspot_company_change(self):
        """A HubSpot company changed: upsert the bound customer from the webhook's own value."""
        payload = self.payload or {}
        company_id = str(payload.get("objectId") or "")
        if not company_id.isdigit():
            raise PermanentError(f"HubSpot company id {company_id!r} is not numeric", reason="malformed")
        field = hubspot.COMPANY_FIELDS.get(payload.get("propertyName"))
        if payload.get("subscriptionType") == "company.propertyChange" and not field:
            raise IgnoreEvent(f"HubSpot property {payload.get('propertyName')!r} is not synchronised")
        Binding = self.env["ps.hub.binding"]
        partner = Binding._hub_lookup(self.connector_id, "company", company_id)
        values = {field: payload.get("propertyValue") or False} if field else {}
        if field == "website" and values[field]:
            values[field] = f"https://{values[field]}"
        self._hub_note_context(customer=partner.name if partner else values.get("name"))
        if partner:
            if any(partner[name] != value for name, value in values.items()):
                partner.write(values)
            return partner
        values.setdefault("name", f"HubSpot company {company_id}")
        partner = self.env["res.partner"].create(dict(values, is_company=True))
        Binding._hub_bind(self.connector_id, "company", company_id, partner)
        return partner

    def _q2c_handle_salesforce_opportunity(self):
        """Outbound message of a won Opportunity -> Account and products over REST -> order and project."""
        sobject = (self.payload or {}).get("sobject") or {}
        opp_id = sobject.get("Id")
        if not salesforce.is_closed_won(sobject):
            raise IgnoreEvent(f"opportunity {opp_id} is at stage {sobject.get('StageName')!r}, not won")
        self._hub_note_context(
            reference=sobject.get("Name"), currency=sobject.get("CurrencyIsoCode"),
            amount=float(sobject["Amount"]) if sobject.get("Amount") else None,
        )
        existing = self._q2c_bound_order("Opportunity")
        if existing:
            return existing
        account_id = sobject.get("AccountId")
        if not account_id:
            raise BusinessError(f"Opportunity {opp_id} has no account.", reason="missing_customer")
        connector = self.connector_id
        account = connector._hub_request(
            "GET", f"{salesforce.API}/sobjects/Account/{quote(account_id)}").json()
        self._hub_note_context(customer=account.get("Name"))
        try:
            query = salesforce.line_items_query(opp_id)
        except ValueError as exc:
            raise PermanentError(str(exc), reason="malformed") from None
        records = []
        answer = connector._hub_request("GET", f"{salesforce.API}/query", params={"q": query}).json()
        records.extend(answer.get("records", []))
        while not answer.get("done", True) and answer.get("nextRecordsUrl"):
            answer = connector._hub_request("GET", answer["nextRecordsUrl"]).json()
            records.extend(answer.get("records", []))
        try:
            engagement = salesforce.engagement(sobject, account, records)
        except (KeyError, ValueError) as exc:
            raise PermanentError(f"Opportunity {opp_id} cannot be read: {exc}", reason="malformed") from None
        return self.env["ps.q2c.engagement"]._q2c_apply(self, engagement)
