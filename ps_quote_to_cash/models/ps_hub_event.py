from urllib.parse import quote

from odoo import models

from odoo.addons.ps_integration_hub.services.errors import BusinessError, HubError, IgnoreEvent, PermanentError

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
        found = self._q2c_hubspot_engagement()
        if isinstance(found, models.BaseModel):
            return found
        return self.env["ps.q2c.engagement"]._q2c_apply(self, found)

    def _q2c_close_hubspot_deals(self):
        """Batch twin of _q2c_handle_hubspot_deal: the deals are read one by one, their orders
        created and confirmed together (one create, one confirmation, one project generation)."""
        results, pending = {}, []
        for event in self:
            try:
                found = event._q2c_hubspot_engagement()
            except (IgnoreEvent, HubError) as exc:
                results[event.id] = exc
                continue
            if isinstance(found, models.BaseModel):
                results[event.id] = found
            else:
                pending.append((event, found))
        results.update(self.env["ps.q2c.engagement"]._q2c_apply_many(pending))
        return results

    def _q2c_hubspot_engagement(self):
        """The order a replay already made, or the deal read from HubSpot as an engagement."""
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
        self._hub_note_context(reference=f"HubSpot deal {deal_id}")  # until the deal's name is known
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
        # the webhook may be a retry, a replay or an edit of an old change: the deal decides
        if hubspot.deal_stage(deal) != hubspot.CLOSED_WON:
            raise IgnoreEvent(
                f"deal {deal_id} is at stage {hubspot.deal_stage(deal)!r} in HubSpot now, not "
                f"{hubspot.CLOSED_WON!r}: it is no longer won, so no order is made")
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
            return hubspot.engagement(deal, company, contact, items)
        except (KeyError, ValueError) as exc:
            raise PermanentError(f"HubSpot deal {deal_id} cannot be read: {exc}", reason="malformed") from None

    def _hub_batch_handlers(self):
        handlers = super()._hub_batch_handlers()
        handlers[("hubspot", "company.propertyChange")] = type(self)._q2c_upsert_hubspot_companies
        handlers[("hubspot", "company.creation")] = type(self)._q2c_upsert_hubspot_companies
        handlers[("hubspot", "deal.propertyChange")] = type(self)._q2c_close_hubspot_deals
        return handlers

    def _q2c_handle_hubspot_company_change(self):
        """A HubSpot company changed: upsert the bound customer from the webhook's own value."""
        result = self._q2c_upsert_hubspot_companies()[self.id]
        if isinstance(result, Exception):
            raise result
        return result

    def _q2c_upsert_hubspot_companies(self):
        """Upsert the customers of many company events: one search, one read, one create.

        A bound company's customer takes the webhook's value. An unbound company is read
        from HubSpot and matched (binding, VAT, domain) as a deal's company is; only a
        customer found nowhere is created. The claim never puts two events of one company
        in a batch, so each customer is touched once here and in arrival order across batches.
        """
        results = {}
        Binding = self.env["ps.hub.binding"]
        for connector, events in self.grouped("connector_id").items():
            company_ids = {e.id: str((e.payload or {}).get("objectId") or "") for e in events}
            bindings_sudo = Binding.sudo().search([
                ("connector_id", "=", connector.id), ("external_model", "=", "company"),
                ("external_id", "in", list(company_ids.values())), ("res_model", "=", "res.partner")])
            bound = {b.external_id: b for b in bindings_sudo}
            partners = self.env["res.partner"].browse([b.res_id for b in bound.values()]).exists()
            first = self._q2c_first_bindings(connector, partners)
            unbound = []
            for event in events:
                payload, company_id = event.payload or {}, company_ids[event.id]
                field = hubspot.COMPANY_FIELDS.get(payload.get("propertyName"))
                if not company_id.isdigit():
                    results[event.id] = PermanentError(
                        f"HubSpot company id {company_id!r} is not numeric", reason="malformed")
                    continue
                if payload.get("subscriptionType") == "company.propertyChange" and not field:
                    results[event.id] = IgnoreEvent(
                        f"HubSpot property {payload.get('propertyName')!r} is not synchronised")
                    continue
                values = {field: payload.get("propertyValue") or False} if field else {}
                if field == "website" and values[field]:
                    values[field] = f"https://{values[field]}"
                binding = bound.get(company_id)
                partner = binding and partners.filtered(lambda p, b=binding: p.id == b.res_id)
                if not partner:
                    unbound.append((event, company_id, values))
                elif first[partner.id] != binding:
                    # two HubSpot companies of one customer would overwrite each other's values
                    results[event.id] = IgnoreEvent(
                        f"HubSpot company {company_id} is a duplicate of company {first[partner.id].external_id}, "
                        f"both {partner.display_name} in Odoo: only company {first[partner.id].external_id} "
                        "is synchronised. Merge the two companies in HubSpot.")
                else:
                    if any(partner[name] != value for name, value in values.items()):
                        partner.write(values)
                    results[event.id] = partner
            if unbound:
                results.update(self._q2c_match_hubspot_companies(connector, unbound))
        return results

    def _q2c_first_bindings(self, connector, partners):
        """{partner id: its first HubSpot company binding}: the one whose changes are synchronised."""
        first = {}
        if partners:
            for binding in self.env["ps.hub.binding"].sudo().search([
                    ("connector_id", "=", connector.id), ("external_model", "=", "company"),
                    ("res_model", "=", "res.partner"), ("res_id", "in", partners.ids)], order="id"):
                first.setdefault(binding.res_id, binding)
        return first

    def _q2c_match_hubspot_companies(self, connector, unbound):
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
            elif (not isinstance(partner, Exception) and company_id not in created
                  and any(partner[k] != v for k, v in values.items())):
                # a customer created from the read has HubSpot's current values already
                partner.write(values)
            results[event.id] = partner
        return results

    def _q2c_handle_salesforce_opportunity(self):
        """Outbound message of a won Opportunity -> the Opportunity, its Account and products over REST
        -> order and project.

        Outbound messages are unsigned: the message only says where to look. Whether the
        Opportunity is won, its amount, currency, legal entity and PO come from the REST read.
        """
        sobject = (self.payload or {}).get("sobject") or {}
        opp_id = sobject.get("Id")
        if not salesforce.is_closed_won(sobject):
            # nothing is made for it, so the message alone may say so
            raise IgnoreEvent(f"opportunity {opp_id} is at stage {sobject.get('StageName')!r}, not won")
        try:
            query = salesforce.line_items_query(opp_id)
        except ValueError as exc:
            raise PermanentError(str(exc), reason="malformed") from None
        self._hub_note_context(reference=sobject.get("Name") or f"Salesforce opportunity {opp_id}")
        existing = self._q2c_bound_order("Opportunity")
        if existing:
            return existing
        connector = self.connector_id
        try:
            opportunity = connector._hub_request("GET", f"{salesforce.API}/sobjects/Opportunity/{opp_id}").json()
        except PermanentError as exc:
            if exc.reason != "remote_not_found":
                raise
            raise BusinessError(
                f"Opportunity {opp_id} no longer exists in Salesforce (deleted or merged): restore it and retry, "
                "or ignore this event.", reason="deal_not_found") from None
        if not salesforce.is_won(opportunity):
            raise IgnoreEvent(
                f"opportunity {opp_id} is not won in Salesforce (IsWon {opportunity.get('IsWon')!r}, stage "
                f"{opportunity.get('StageName')!r}), whatever the outbound message said: no order is made")
        self._hub_note_context(
            reference=opportunity.get("Name"), currency=opportunity.get("CurrencyIsoCode"),
            amount=float(opportunity["Amount"]) if isinstance(opportunity.get("Amount"), (int, float)) else None,
        )
        account_id = opportunity.get("AccountId")
        if not account_id:
            raise BusinessError(f"Opportunity {opp_id} has no account.", reason="missing_customer")
        try:
            salesforce.check_id(account_id)
        except ValueError as exc:
            raise PermanentError(str(exc), reason="malformed") from None
        account = connector._hub_request("GET", f"{salesforce.API}/sobjects/Account/{account_id}").json()
        self._hub_note_context(customer=account.get("Name"))
        records = []
        answer = connector._hub_request("GET", f"{salesforce.API}/query", params={"q": query}).json()
        records.extend(answer.get("records", []))
        while not answer.get("done", True) and answer.get("nextRecordsUrl"):
            answer = connector._hub_request("GET", answer["nextRecordsUrl"]).json()
            records.extend(answer.get("records", []))
        try:
            engagement = salesforce.engagement(opportunity, account, records)
        except (KeyError, ValueError) as exc:
            raise PermanentError(f"Opportunity {opp_id} cannot be read: {exc}", reason="malformed") from None
        return self.env["ps.q2c.engagement"]._q2c_apply(self, engagement)
