from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from ps_hub_fakes import load_fixture

from .common import Q2CMixin


@tagged("post_install", "-at_install")
class TestCompanyMapping(Q2CMixin, TransactionCase):
    """The HubSpot company mapping: seeded from the constants, versioned, dry-run, applied."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.v1 = cls.env.ref("ps_quote_to_cash.mapping_hubspot_company")
        cls.Field = cls.env["ir.model.fields"]

    def change(self, event_id, prop, value, company_id=5500071):
        events, _dup = self.enqueue(self.hubspot, [{
            "eventId": event_id, "subscriptionType": "company.propertyChange", "objectId": company_id,
            "propertyName": prop, "propertyValue": value, "occurredAt": 1763632800000 + event_id}])
        self.process()
        return events

    def draft_of(self, mapping):
        """A new draft of ``mapping``, made as an integration manager through the UI's button."""
        action = mapping.with_user(self.user_manager).action_new_draft()
        return self.env["ps.hub.mapping"].with_user(self.user_manager).browse(action["res_id"])

    def line(self, mapping, field):
        return mapping.line_ids.filtered(lambda line: line.field_id.name == field)

    def edit_draft(self):
        """Names in upper case, countries looked up, the zip required: what the dry-run shows."""
        draft = self.draft_of(self.v1)
        self.line(draft, "name").transform = "upper"
        self.line(draft, "zip").required = True
        draft.line_ids = [(0, 0, {
            "source_path": "/properties/country", "field_id": self.Field._get("res.partner", "country_id").id,
            "transform": "lookup", "value_map_id": self.env.ref("ps_quote_to_cash.value_map_country").id,
        })]
        return draft

    def snapshot(self, partner, events):
        self.env.flush_all()
        self.env.cr.execute("SELECT name, website, zip, country_id, write_date FROM res_partner WHERE id = %s",
                            [partner.id])
        row = self.env.cr.fetchall()
        self.env.cr.execute("SELECT id, state, mapping_version_id, write_date FROM ps_hub_event WHERE id IN %s "
                            "ORDER BY id", [tuple(events.ids)])
        return row, self.env.cr.fetchall()

    def test_seed_is_todays_company_fields(self):
        self.assertEqual((self.v1.state, self.v1.version, self.v1.model), ("active", 1, "res.partner"))
        self.assertEqual(
            {line.source_path: (line.field_id.name, line.transform or None) for line in self.v1.line_ids},
            {"properties.name": ("name", None), "properties.domain": ("website", "url"),
             "properties.phone": ("phone", None), "properties.address": ("street", None),
             "properties.city": ("city", None), "properties.zip": ("zip", None),
             "properties.vat_number": ("vat", None)})
        for xmlid in ("mapping_hubspot_deal", "mapping_salesforce_account", "mapping_salesforce_opportunity"):
            self.assertEqual(self.env.ref(f"ps_quote_to_cash.{xmlid}").state, "active", xmlid)
        opportunity = self.env.ref("ps_quote_to_cash.mapping_salesforce_opportunity")
        self.assertEqual(
            {line.source_path: line.field_id.name for line in opportunity.line_ids},
            {"Name": "origin", "PO_Number__c": "client_order_ref", "Legal_Entity__c": "company_id"})
        account = self.env.ref("ps_quote_to_cash.mapping_salesforce_account")
        self.assertEqual(self.line(account, "vat").source_path, "Tax_Id__c")

    def test_dry_run_of_changed_mapping_shows_what_would_change_and_writes_nothing(self):
        first = self.change(1, "name", "Northwind Legal LLP")  # unbound: read from HubSpot, matched, bound
        partner = first._hub_record()
        events = first | self.change(2, "name", "Northwind Legal & Co") | self.change(3, "country", "USA") \
            | self.change(4, "zip", "") | self.change(5, "city", "London")
        self.assertEqual(events.mapped("state"), ["done", "done", "ignored", "done", "done"])
        self.assertEqual(set(events.mapped("mapping_version_id")), {self.v1}, "each event records its version")
        draft = self.edit_draft()
        before = self.snapshot(partner, events)
        audit_count = self.env["ps.hub.audit.log"].sudo().search_count([])

        action = draft.action_dry_run()
        wizard = self.env["ps.hub.mapping.dry.run"].with_user(self.user_manager).browse(action["res_id"])

        self.assertEqual(self.snapshot(partner, events), before, "the customer and the events are untouched")
        self.assertEqual(self.env["ps.hub.audit.log"].sudo().search_count([]), audit_count)
        self.assertEqual((wizard.compare_id, wizard.event_count), (self.v1, 5))
        by_event = {line.event_id.id: line for line in wizard.line_ids}
        name_now = partner.name
        self.assertEqual(name_now, "Northwind Legal & Co")
        renamed = by_event[events[1].id]
        self.assertEqual((renamed.result, renamed.res_model, renamed.res_id), ("change", "res.partner", partner.id))
        self.assertEqual(renamed.changes, "name: 'Northwind Legal & Co' -> 'NORTHWIND LEGAL & CO'")
        self.assertEqual(renamed.differs, "name: 'Northwind Legal & Co' -> 'NORTHWIND LEGAL & CO'")
        country = by_event[events[2].id]
        self.assertEqual(country.result, "change", "version 1 ignored the country; the draft sets it")
        self.assertEqual(country.changes, "country_id: United Kingdom -> United States")
        self.assertEqual(country.differs, "country_id: (empty) -> United States")
        emptied = by_event[events[3].id]
        self.assertEqual(emptied.result, "failed")
        self.assertIn("zip: required", emptied.errors)
        city = by_event[events[4].id]
        self.assertEqual((city.result, city.changes, city.differs), ("same", False, False))
        self.assertEqual((by_event[first.id].result, by_event[first.id].differs),
                         ("change", "name: 'Northwind Legal LLP' -> 'NORTHWIND LEGAL LLP'"))
        self.assertFalse(emptied.differs, "a field that fails is an error, not a difference")
        self.assertEqual((wizard.failed_count, wizard.change_count, wizard.differ_count), (1, 3, 3))

        wizard.limit = 2
        wizard.action_run()
        self.assertEqual(wizard.line_ids.event_id, events[3:], "the last two events, the report replaced")

        wizard.action_activate()
        self.assertEqual((draft.state, self.v1.state), ("active", "archived"))
        later = self.change(6, "name", "northwind legal")
        self.assertEqual((later.state, partner.name), ("done", "NORTHWIND LEGAL"))
        self.assertEqual(later.mapping_version_id, draft)
        self.assertEqual(events[1].mapping_version_id, self.v1, "earlier events keep the version that read them")

    def test_activation_archives_the_old_version_which_stays_readable(self):
        draft = self.edit_draft()
        self.assertEqual((draft.version, draft.origin_id, draft.state), (2, self.v1, "draft"))
        self.assertEqual(self.draft_of(self.v1), draft, "one draft at a time: New Draft opens it")
        with self.assertRaises(UserError):
            self.line(self.v1.with_user(self.user_manager), "name").transform = "lower"
        with self.assertRaises(UserError):
            self.v1.with_user(self.user_manager).unlink()
        with self.assertRaises(UserError):
            self.line(self.v1.with_user(self.user_manager), "name").unlink()
        with self.assertRaises(UserError):
            draft.write({"state": "active"})
        draft.action_activate()
        self.assertEqual((self.v1.state, draft.state, draft.activated_by_id), ("archived", "active", self.user_manager))
        self.assertTrue(self.v1.archived_at and draft.activated_at)
        old = self.v1.with_user(self.user_hub)  # a reader reads the archived version and its lines
        lines = {line["source_path"]: line for line in old.line_ids.read(["source_path", "field_id", "transform"])}
        self.assertEqual(len(lines), 7)
        self.assertEqual((lines["properties.name"]["field_id"][0], lines["properties.name"]["transform"]),
                         (self.Field._get("res.partner", "name").id, False))
        self.assertEqual(old.version_ids, draft | self.v1)
        with self.assertRaises(UserError):
            draft.action_activate()
        v3 = self.draft_of(self.v1)  # an archived version may be the base of the next draft
        self.assertEqual((v3.version, v3.origin_id, len(v3.line_ids)), (3, self.v1, 7))

    def test_handler_writes_what_the_active_mapping_says(self):
        first = self.change(1, "name", "Northwind Legal LLP")
        partner = first._hub_record()
        self.assertEqual(self.change(2, "phone", "+44 20 0000 0000").state, "done")
        self.assertEqual(partner.phone, "+44 20 0000 0000")
        draft = self.draft_of(self.v1)
        self.line(draft, "phone").unlink()  # phone no longer synchronised
        draft.line_ids = [(0, 0, {"source_path": "properties.phone", "transform": "strip",
                                  "field_id": self.Field._get("res.partner", "ref").id})]
        self.line(draft, "website").write({"required": True})
        draft.action_activate()
        phone = self.change(3, "phone", "  +44 20 1111 1111 ")
        self.assertEqual(phone.state, "done")
        self.assertEqual((partner.phone, partner.ref), ("+44 20 0000 0000", "+44 20 1111 1111"))
        emptied = self.change(4, "domain", "")
        self.assertEqual((emptied.state, emptied.reason, emptied.mapping_version_id),
                         ("exception", "mapping_failed", draft))
        self.assertIn("website: required", emptied.last_error)
        self.assertEqual(partner.website, "https://northwind-legal.example", "nothing written")

    def test_without_active_mapping_a_change_waits_for_one(self):
        first = self.change(1, "name", "Northwind Legal LLP")
        self.env.cr.execute("UPDATE ps_hub_mapping SET state = 'archived' WHERE id = %s", [self.v1.id])
        self.env.invalidate_all()
        self.env.registry.clear_cache()
        event = self.change(2, "name", "Renamed")
        self.assertEqual((event.state, event.reason), ("exception", "no_mapping"))
        self.assertEqual(first._hub_record().name, "Northwind Legal LLP")


@tagged("post_install", "-at_install")
class TestValueMapsInClosedWon(Q2CMixin, TransactionCase):
    def test_legal_entity_and_payment_terms_value_maps_come_before_the_name_match(self):
        self.env.ref("ps_quote_to_cash.value_map_legal_entity").entry_ids = [
            (0, 0, {"external_value": "PSC EU", "res_id": self.europe.id})]
        props = self.fake_hubspot.deals["19077001"]["properties"]
        props.update(legal_entity=" psc eu ", payment_terms="NET 45")
        events, _dup = self.enqueue(self.hubspot, [{
            "eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 19077001,
            "propertyName": "dealstage", "propertyValue": "closedwon", "occurredAt": 1763632800001}])
        self.process()
        self.assertEqual(events.state, "done", events.last_error)
        order = events._hub_record()
        self.assertEqual((order.company_id, order.payment_term_id),
                         (self.europe, self.env.ref("account.account_payment_term_45days")))

    def test_dry_run_of_the_opportunity_mapping_on_outbound_messages(self):
        """The message's fields through the draft, compared with the order the Opportunity made;
        the legal entity, without value map entry, is matched by the company's name."""
        body = load_fixture("salesforce/outbound_message_opportunity.xml").encode()
        event, _dup = self.enqueue(self.salesforce, body)
        self.process()
        order = event._hub_record()
        self.assertEqual((event.state, order.company_id), ("done", self.inc))
        v1 = self.env.ref("ps_quote_to_cash.mapping_salesforce_opportunity")
        draft = v1.with_user(self.user_manager).action_new_draft()
        draft = self.env["ps.hub.mapping"].browse(draft["res_id"])
        draft.line_ids.filtered(lambda line: line.source_path == "Name").transform = "upper"
        [row] = draft._hub_dry_run(event)
        self.assertEqual(row["record"], order)
        self.assertTrue(row["result"].ok, row["result"].problems())
        self.assertEqual(row["result"].values, {
            "origin": "CONTOSO ENGINEERING - ASSET MANAGEMENT IMPLEMENTATION", "client_order_ref": "4500098812",
            "company_id": self.inc.id})
        self.assertEqual(row["changes"], {"origin": ("Contoso Engineering - Asset management implementation",
                                                     "CONTOSO ENGINEERING - ASSET MANAGEMENT IMPLEMENTATION")})
        self.assertEqual(list(row["differs"]), ["origin"])
        payload = dict(event.payload, sobject=dict(event.payload["sobject"], Legal_Entity__c="PS Consulting Mars"))
        event.sudo().write({"payload": payload})
        [row] = draft._hub_dry_run(event)
        self.assertIn("legal_entity has no entry for 'PS Consulting Mars'", row["result"].errors["company_id"])


class ClosedWonMappingMixin(Q2CMixin):
    """Deals and Opportunities won against the fake CRMs, and drafts of the seeded mappings."""

    OPPORTUNITY = "0065e00000GhIjKAAV"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Field = cls.env["ir.model.fields"]
        cls.deal_v1 = cls.env.ref("ps_quote_to_cash.mapping_hubspot_deal")
        cls.opportunity_v1 = cls.env.ref("ps_quote_to_cash.mapping_salesforce_opportunity")

    def draft_of(self, mapping):
        action = mapping.with_user(self.user_manager).action_new_draft()
        return self.env["ps.hub.mapping"].with_user(self.user_manager).browse(action["res_id"])

    def line(self, mapping, field):
        return mapping.line_ids.filtered(lambda line: line.field_id.name == field)

    def new_line(self, path, field, **values):
        return (0, 0, {"source_path": path, "field_id": self.Field._get("sale.order", field).id, **values})

    def close_deal(self):
        events, _dup = self.enqueue(self.hubspot, [{
            "eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 19077001,
            "propertyName": "dealstage", "propertyValue": "closedwon", "occurredAt": 1763632800001}])
        self.process()
        return events

    def win_opportunity(self):
        body = load_fixture("salesforce/outbound_message_opportunity.xml").encode()
        event, _dup = self.enqueue(self.salesforce, body)
        self.process()
        return event



@tagged("post_install", "-at_install")
class TestDealMappingInClosedWon(ClosedWonMappingMixin, TransactionCase):
    """The active deal and Opportunity mappings decide the order fields they map."""

    def test_seeded_deal_mapping_makes_the_order_the_code_made(self):
        won = self.close_deal()
        self.assertEqual(won.state, "done", won.last_error)
        order = won._hub_record()
        self.assertEqual((order.origin, order.client_order_ref, order.company_id, order.payment_term_id),
                         ("Northwind Legal - Practice management rollout", "PO-2026-7781", self.europe,
                          self.env.ref("account.account_payment_term_30days")))
        self.assertEqual(won.mapping_version_id, self.deal_v1, "the event records the version that read the deal")

    def test_new_deal_mapping_version_changes_the_order(self):
        self.fake_hubspot.deals["19077001"]["properties"]["delivery_manager_email"] = "dora@psconsulting.example"
        draft = self.draft_of(self.deal_v1)
        self.line(draft, "client_order_ref").source_path = "properties.dealname"
        self.line(draft, "origin").unlink()  # no longer mapped: the order's origin is the deal's id
        # a property the flow does not read itself: the deal is read with it
        draft.line_ids = [self.new_line("properties.delivery_manager_email", "note")]
        draft.action_activate()
        won = self.close_deal()
        self.assertEqual(won.state, "done", won.last_error)
        order = won._hub_record()
        self.assertEqual((order.client_order_ref, order.origin, order.company_id),
                         ("Northwind Legal - Practice management rollout", "19077001", self.europe))
        self.assertIn("dora@psconsulting.example", str(order.note))
        self.assertIn("delivery_manager_email",
                      self.fake_hubspot.calls("GET", "/crm/v3/objects/deals/19077001")[0].query["properties"])
        self.assertEqual((won.mapping_version_id, self.deal_v1.state), (draft, "archived"))

    def test_failing_deal_mapping_is_a_business_error_and_makes_nothing(self):
        self.fake_hubspot.deals["19077001"]["properties"]["po_number"] = " "
        draft = self.draft_of(self.deal_v1)
        self.line(draft, "client_order_ref").required = True
        draft.action_activate()
        won = self.close_deal()
        self.assertEqual((won.state, won.reason, won.mapping_version_id), ("exception", "mapping_failed", draft))
        self.assertIn("client_order_ref: required", won.last_error)
        self.assertIn(draft.display_name, won.last_error)
        self.assertFalse(won._hub_record())
        self.assertFalse(self.env["res.partner"].search([("vat", "=", "GB123456782")]), "no customer either")

    def test_unknown_payment_terms_of_the_seeded_mapping_is_a_business_error(self):
        self.fake_hubspot.deals["19077001"]["properties"]["payment_terms"] = "Net 99"
        won = self.close_deal()
        self.assertEqual((won.state, won.reason, won.mapping_version_id),
                         ("exception", "mapping_failed", self.deal_v1))
        self.assertIn("payment_term_id", won.last_error)
        self.assertIn("Net 99", won.last_error)

    def test_mapping_company_must_be_the_flows(self):
        """The flow picks the company (legal entity, value map legal_entity) before the customer:
        a mapping that gives another one is a business error, not an order split across two."""
        self.env.ref("ps_quote_to_cash.value_map_legal_entity").entry_ids = [
            (0, 0, {"external_value": "default", "res_id": self.inc.id})]
        draft = self.draft_of(self.deal_v1)
        self.line(draft, "company_id").source_path = "properties.pipeline"  # "default"
        draft.action_activate()
        won = self.close_deal()
        self.assertEqual((won.state, won.reason), ("exception", "mapping_failed"))
        self.assertIn("company_id PS Consulting Inc.", won.last_error)
        self.assertIn("PS Consulting Europe", won.last_error)

    def test_without_active_deal_mapping_the_code_reads_the_deal(self):
        self.env.cr.execute("UPDATE ps_hub_mapping SET state = 'archived' WHERE id = %s", [self.deal_v1.id])
        self.env.invalidate_all()
        self.env.registry.clear_cache()
        won = self.close_deal()
        self.assertEqual(won.state, "done", won.last_error)
        order = won._hub_record()
        self.assertEqual((order.client_order_ref, order.origin), ("PO-2026-7781",
                                                                  "Northwind Legal - Practice management rollout"))
        self.assertFalse(won.mapping_version_id)

    def test_seeded_opportunity_mapping_is_recorded_on_the_event(self):
        event = self.win_opportunity()
        self.assertEqual((event.state, event.mapping_version_id), ("done", self.opportunity_v1), event.last_error)
        order = event._hub_record()
        self.assertEqual((order.client_order_ref, order.origin, order.company_id),
                         ("4500098812", "Contoso Engineering - Asset management implementation", self.inc))

    def test_new_opportunity_mapping_version_changes_the_order(self):
        draft = self.draft_of(self.opportunity_v1)
        self.line(draft, "client_order_ref").source_path = "Name"
        draft.line_ids = [self.new_line("PO_Number__c", "note")]
        draft.action_activate()
        event = self.win_opportunity()
        self.assertEqual((event.state, event.mapping_version_id), ("done", draft), event.last_error)
        order = event._hub_record()
        self.assertEqual(order.client_order_ref, "Contoso Engineering - Asset management implementation")
        self.assertIn("4500098812", str(order.note))

    def test_failing_opportunity_mapping_is_a_business_error(self):
        self.fake_salesforce.opportunities[self.OPPORTUNITY]["PO_Number__c"] = ""
        draft = self.draft_of(self.opportunity_v1)
        self.line(draft, "client_order_ref").required = True
        draft.action_activate()
        event = self.win_opportunity()
        self.assertEqual((event.state, event.reason, event.mapping_version_id),
                         ("exception", "mapping_failed", draft))
        self.assertIn("client_order_ref: required", event.last_error)
        self.assertIn(draft.display_name, event.last_error)
        self.assertFalse(event._hub_record())


@tagged("post_install", "-at_install")
class TestCustomerMappingInClosedWon(ClosedWonMappingMixin, TransactionCase):
    """The active HubSpot company and Salesforce Account mappings give a new customer its values."""

    def partner_line(self, path, field, **values):
        return (0, 0, {"source_path": path, "field_id": self.Field._get("res.partner", field).id, **values})

    def test_new_account_mapping_version_changes_a_new_customer(self):
        account_v1 = self.env.ref("ps_quote_to_cash.mapping_salesforce_account")
        draft = self.draft_of(account_v1)
        draft.line_ids.filtered(lambda line: line.field_id.name == "name").transform = "upper"
        draft.line_ids = [self.partner_line("Id", "ref")]
        draft.action_activate()
        event = self.win_opportunity()
        self.assertEqual(event.state, "done", event.last_error)
        customer = event._hub_record().partner_id
        self.assertEqual(customer.name, customer.name.upper(), "the new version's transform")
        self.assertTrue(customer.ref, "a line the code never had: the Account's id")
        self.assertEqual(customer.ref, self.salesforce.env["ps.hub.binding"].sudo().search([
            ("connector_id", "=", self.salesforce.id), ("external_model", "=", "Account"),
            ("res_id", "=", customer.id)]).external_id)

    def test_new_company_mapping_version_changes_a_new_customer(self):
        company_v1 = self.env["ps.hub.mapping"]._hub_active(self.hubspot, "company", model="res.partner")
        draft = self.draft_of(company_v1)
        draft.line_ids = [self.partner_line("properties.city", "comment")]
        draft.action_activate()
        won = self.close_deal()
        self.assertEqual(won.state, "done", won.last_error)
        customer = won._hub_record().partner_id
        self.assertTrue(customer.city)
        self.assertIn(customer.city, str(customer.comment), "the new version's line filled the new customer")

    def test_a_customer_mapping_that_fails_is_a_business_error(self):
        account_v1 = self.env.ref("ps_quote_to_cash.mapping_salesforce_account")
        draft = self.draft_of(account_v1)
        draft.line_ids = [self.partner_line("No_Such_Field__c", "ref", required=True)]
        draft.action_activate()
        event = self.win_opportunity()
        self.assertEqual((event.state, event.reason), ("exception", "mapping_failed"))
        self.assertIn("ref: required", event.last_error)
        self.assertFalse(event._hub_record())
