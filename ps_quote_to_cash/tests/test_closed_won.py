import json
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import HttpCase, TransactionCase, tagged
from odoo.tools import mute_logger

from ps_hub_fakes import load_fixture, load_json
from ps_hub_fakes.signing import hubspot_headers

from .common import Q2CMixin


@tagged("post_install", "-at_install")
class TestHubSpotClosedWon(Q2CMixin, TransactionCase):
    def deliver_fixture(self):
        events, _dup = self.enqueue(self.hubspot, load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.process()
        return events.sorted("idempotency_key")

    def orders(self):
        return self.env["sale.order"].search([("partner_id.vat", "=", "GB123456782")])

    def test_closed_won_becomes_confirmed_order_and_project(self):
        won, other = self.deliver_fixture()
        self.assertEqual(won.state, "done", won.last_error)
        order = won._hub_record()
        self.assertEqual(order._name, "sale.order")
        self.assertEqual(order.state, "sale")
        self.assertEqual(order.company_id, self.europe)
        self.assertEqual(order.currency_id.name, "EUR")
        self.assertEqual(order.client_order_ref, "PO-2026-7781")
        self.assertEqual(order.amount_untaxed, 98400)
        self.assertEqual(sorted(order.order_line.mapped("product_id.default_code")),
                         ["PS-BLUEPRINT-MS", "PS-CONSULT-TM", "PS-RETAINER"])
        self.assertTrue(order.project_ids, "sale_project made the project")
        partner = order.partner_id
        self.assertEqual((partner.name, partner.vat, partner.city), ("Northwind Legal LLP", "GB123456782", "London"))
        self.assertEqual(partner.child_ids.email, "amelia.barrow@northwind-legal.example")
        self.assertEqual((won.ctx_customer, won.ctx_amount, won.ctx_currency),
                         ("Northwind Legal LLP", 98400, "EUR"))
        self.assertEqual((other.state, other.reason), ("ignored", "not_applicable"))
        self.assertIn("appointmentscheduled", other.ignore_reason)
        deal_calls = self.fake_hubspot.calls("GET", "/crm/v3/objects/deals/19077001")
        self.assertEqual(len(deal_calls), 1)
        self.assertIn("line_items", deal_calls[0].query["associations"])
        self.assertEqual(deal_calls[0].headers["Authorization"], "Bearer pat-test-token")

    def test_replay_creates_nothing_new(self):
        self.deliver_fixture()
        # the same delivery again: duplicates, not stored
        again, dup = self.enqueue(self.hubspot, load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.assertEqual((len(again), dup), (0, 2))
        # the deal closed-won again under a new event id: processed, bound to the same order
        payload = load_json("hubspot/webhook_deal_closedwon.json")[0]
        payload["eventId"] = 99
        second, _dup = self.enqueue(self.hubspot, [payload])
        self.process()
        self.assertEqual(second.state, "done")
        self.assertEqual(len(self.orders()), 1)
        self.assertEqual(second._hub_record(), self.orders())

    def test_customer_matched_by_vat_then_domain(self):
        existing = self.env["res.partner"].create({"name": "Northwind (old name)", "is_company": True,
                                                   "vat": "GB 123 456 782"})
        won, _other = self.deliver_fixture()
        self.assertEqual(won._hub_record().partner_id, existing)
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "company", "5500071"), existing)

    def test_customer_matched_by_domain(self):
        existing = self.env["res.partner"].create({"name": "Northwind", "is_company": True,
                                                   "website": "https://www.northwind-legal.example"})
        won, _other = self.deliver_fixture()
        self.assertEqual(won._hub_record().partner_id, existing)

    def test_customer_conflict_is_an_exception(self):
        by_vat = self.env["res.partner"].create({"name": "NW by VAT", "is_company": True, "vat": "GB123456782"})
        self.env["res.partner"].create({"name": "NW by domain", "is_company": True,
                                        "website": "northwind-legal.example"})
        won, _other = self.deliver_fixture()
        self.assertEqual((won.state, won.error_class, won.reason), ("exception", "business", "customer_conflict"))
        self.assertIn("NW by VAT", won.last_error)
        self.assertFalse(self.env["sale.order"].search([("partner_id", "=", by_vat.id)]))

    def test_missing_sku_then_retry_completes(self):
        self.products.filtered(lambda p: p.default_code == "PS-RETAINER").default_code = "OLD-RETAINER"
        won, _other = self.deliver_fixture()
        self.assertEqual((won.state, won.reason), ("exception", "missing_product"))
        self.assertIn("PS-RETAINER", won.last_error)
        self.assertEqual(won.ctx_customer, "Northwind Legal LLP", "context readable on the desk")
        self.assertFalse(self.orders(), "nothing half-made")
        self.products.filtered(lambda p: p.default_code == "OLD-RETAINER").default_code = "PS-RETAINER"
        won.with_user(self.user_finance).action_retry()
        self.process()
        self.assertEqual(won.state, "done", won.last_error)
        self.assertEqual(len(self.orders()), 1)

    def test_unknown_legal_entity(self):
        self.fake_hubspot.deals["19077001"]["properties"]["legal_entity"] = "PS Consulting Mars"
        won, _other = self.deliver_fixture()
        self.assertEqual((won.state, won.reason), ("exception", "unknown_legal_entity"))
        self.assertIn("PS Consulting Mars", won.last_error)
        self.fake_hubspot.deals["19077001"]["properties"]["legal_entity"] = "PS Consulting Europe"
        won.action_retry()
        self.process()
        self.assertEqual(won.state, "done")

    def test_rate_limited_is_retried_later(self):
        self.hubspot.retry_backoff_base = 1  # so that only HubSpot's headers can explain a longer wait
        self.fake_hubspot.fail_next(1, status=429)
        won, _other = self.deliver_fixture()
        self.assertEqual((won.state, won.error_class, won.reason), ("retry", "transient", "rate_limited"))
        wait = (won.next_attempt_at - fields.Datetime.now()).total_seconds()
        self.assertGreaterEqual(wait, 9, "HubSpot's 10-second window is honoured, not only the backoff")
        self.assertEqual(won.attempts, 0, "a rate limit is not the event's fault: no attempt charged")
        won.sudo().next_attempt_at = "2000-01-01 00:00:00"
        self.end_vendor_pause(self.hubspot)  # the connector waited HubSpot's window too
        self.process()
        self.assertEqual(won.state, "done")
        self.assertEqual(won.attempts, 1)

    def test_deals_of_one_batch_each_get_their_order(self):
        """Several closed-won deals in one batch: two legal entities, a shared new customer, a bad SKU."""
        fake = self.fake_hubspot
        fake.add_deal("3001", "9001", None, [{"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 10,
                                              "price": 100}], legal_entity="PS Consulting Inc.",
                      deal_currency_code="USD", dealname="Deal A")
        fake.add_deal("3002", "9002", None, [{"name": "Retainer", "hs_sku": "PS-RETAINER", "quantity": 2,
                                              "price": 50}], dealname="Deal B")
        fake.add_deal("3003", "9001", None, [{"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 1,
                                              "price": 7}], dealname="Deal C")
        fake.add_deal("3004", "9003", None, [{"name": "Mystery", "hs_sku": "NOPE", "quantity": 1, "price": 1}],
                      dealname="Deal D")
        events, _dup = self.enqueue(self.hubspot, [
            {"eventId": 500 + i, "subscriptionType": "deal.propertyChange", "objectId": deal,
             "propertyName": "dealstage", "propertyValue": "closedwon"}
            for i, deal in enumerate((3001, 3002, 3003, 3004))])
        self.process()
        a, b, c, d = events.sorted("idempotency_key")
        self.assertEqual([a.state, b.state, c.state, d.state], ["done", "done", "done", "exception"])
        self.assertEqual(d.reason, "missing_product")
        order_a, order_b, order_c = a._hub_record(), b._hub_record(), c._hub_record()
        self.assertEqual((order_a.company_id, order_a.currency_id.name, order_a.amount_untaxed),
                         (self.inc, "USD", 1000))
        self.assertEqual((order_b.company_id, order_b.amount_untaxed), (self.europe, 100))
        self.assertEqual(order_c.amount_untaxed, 7)
        self.assertEqual(order_a.partner_id, order_c.partner_id, "one customer for company 9001")
        self.assertEqual(set((order_a | order_b | order_c).mapped("state")), {"sale"})
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "3002"), order_b)

    def test_deal_gone_from_hubspot_is_an_exception(self):
        del self.fake_hubspot.deals["19077001"]
        won, _other = self.deliver_fixture()
        self.assertEqual((won.state, won.error_class, won.reason), ("exception", "business", "deal_not_found"))
        self.assertIn("Deal 19077001 no longer exists in HubSpot", won.last_error)
        self.assertEqual(won.ctx_reference, "HubSpot deal 19077001", "the desk card says which deal")


@tagged("post_install", "-at_install")
class TestHubSpotCompanySync(Q2CMixin, TransactionCase):
    def change(self, event_id, prop, value, company_id=5500071):
        events, _dup = self.enqueue(self.hubspot, [{
            "eventId": event_id, "subscriptionType": "company.propertyChange", "objectId": company_id,
            "propertyName": prop, "propertyValue": value, "occurredAt": 1763632800000 + event_id}])
        self.process()
        return events

    def test_company_changes_upsert_one_partner_in_order(self):
        first = self.change(1, "name", "Northwind Legal LLP")
        partner = first._hub_record()
        self.assertEqual((first.state, partner.name, partner.is_company), ("done", "Northwind Legal LLP", True))
        events, _dup = self.enqueue(self.hubspot, [
            {"eventId": 2, "subscriptionType": "company.propertyChange", "objectId": 5500071,
             "propertyName": "name", "propertyValue": "Northwind Legal"},
            {"eventId": 3, "subscriptionType": "company.propertyChange", "objectId": 5500071,
             "propertyName": "name", "propertyValue": "Northwind Legal & Co"},
        ])
        self.process()
        self.assertEqual(events.mapped("state"), ["done", "done"])
        self.assertEqual(partner.name, "Northwind Legal & Co", "the later change wins")
        self.change(4, "domain", "northwind-legal.example")
        self.assertEqual(partner.website, "https://northwind-legal.example")
        self.assertEqual(self.env["res.partner"].search_count([("name", "ilike", "Northwind Legal")]), 1)

    def test_new_companies_are_created_in_one_go(self):
        Partner = type(self.env["res.partner"])
        creates = []
        original = Partner.create
        for i in range(5):  # an unbound company is read from HubSpot, to be matched
            self.fake_hubspot.add_company(6000 + i, f"Client {i}")

        def counting_create(model, vals_list):
            creates.append(len(vals_list) if isinstance(vals_list, list) else 1)
            return original(model, vals_list)
        events, _dup = self.enqueue(self.hubspot, [
            {"eventId": 100 + i, "subscriptionType": "company.propertyChange", "objectId": 6000 + i,
             "propertyName": "name", "propertyValue": f"Client {i}"} for i in range(5)])
        with patch.object(Partner, "create", counting_create):
            self.process()
        self.assertEqual(set(events.mapped("state")), {"done"})
        self.assertIn(5, creates, "one create for the five new customers")
        self.assertEqual(sorted(events.mapped(lambda e: e._hub_record().name)), [f"Client {i}" for i in range(5)])

    def test_failed_batch_falls_back_to_one_by_one(self):
        for i in range(3):
            self.fake_hubspot.add_company(7000 + i, f"Client {i}")
        events, _dup = self.enqueue(self.hubspot, [
            {"eventId": 200 + i, "subscriptionType": "company.propertyChange", "objectId": 7000 + i,
             "propertyName": "name", "propertyValue": f"Client {i}"} for i in range(3)])
        Partner = type(self.env["res.partner"])
        original = Partner.create

        def picky_create(model, vals_list):
            names = [v.get("name") for v in (vals_list if isinstance(vals_list, list) else [vals_list])]
            if "Client 1" in names:
                raise ValidationError("Client 1 is refused")
            return original(model, vals_list)
        with patch.object(Partner, "create", picky_create), mute_logger("odoo.addons.ps_integration_hub"):
            self.process()
        self.assertEqual(events.mapped("state"), ["done", "exception", "done"])
        self.assertEqual(events[1].reason, "rejected_by_odoo")
        self.assertEqual(self.env["ps.hub.binding"].search_count([
            ("connector_id", "=", self.hubspot.id), ("external_id", "in", ["7000", "7001", "7002"])]), 2)

    def test_unsynchronised_property_is_ignored(self):
        event = self.change(5, "hs_lead_status", "OPEN")
        self.assertEqual(event.state, "ignored")
        self.assertIn("hs_lead_status", event.ignore_reason)


@tagged("post_install", "-at_install")
class TestSalesforceClosedWon(Q2CMixin, TransactionCase):
    def test_won_opportunity_becomes_order_in_usd(self):
        body = load_fixture("salesforce/outbound_message_opportunity.xml").encode()
        events, _dup = self.enqueue(self.salesforce, body)
        self.process()
        self.assertEqual(events.state, "done", events.last_error)
        order = events._hub_record()
        self.assertEqual((order.state, order.company_id, order.currency_id.name), ("sale", self.inc, "USD"))
        self.assertEqual(order.amount_untaxed, 151500)
        self.assertEqual(order.partner_id.name, "Contoso Engineering Inc.")
        self.assertEqual(order.client_order_ref, "4500098812")
        self.assertTrue(order.project_ids)
        token_calls = self.fake_salesforce.calls("POST", "/services/oauth2/token")
        self.assertTrue(token_calls)
        query = self.fake_salesforce.calls("GET", "/services/data/v62.0/query")[0]
        self.assertIn("OpportunityId = '0065e00000GhIjKAAV'", query.query["q"])

    def test_lost_opportunity_is_ignored(self):
        body = self.fake_salesforce.outbound_message([{
            "notification_id": "04l5e00000CxYz9AAF", "opportunity_id": "0065e00000GhIjKAAV",
            "account_id": "0015e00000QrStUAAV", "stage": "Closed Lost", "is_won": False}])
        events, _dup = self.enqueue(self.salesforce, body)
        self.process()
        self.assertEqual(events.state, "ignored")


@tagged("post_install", "-at_install")
class TestClosedWonOverHttp(Q2CMixin, HttpCase):
    def test_signed_webhook_to_project(self):
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        # HubSpot signs the URL of the app's webhook settings: the public one, behind the proxy
        self.hubspot.public_base_url = "https://odoo.ps-consulting.example"
        hubspot_sudo = self.hubspot.sudo()
        headers = {"Content-Type": "application/json",
                   **hubspot_headers("hubspot-client-secret", hubspot_sudo.inbound_url, body)}
        url = f"{self.base_url()}/ps_hub/in/{hubspot_sudo.inbound_token}"
        response = self.url_open(url, data=body, headers=headers, method="POST")
        self.assertEqual(response.json(), {"accepted": 2, "duplicates": 0})
        self.process()
        event = self.env["ps.hub.event"].search([("idempotency_key", "=", "8765432:3817561001")])
        order = event._hub_record()
        self.assertEqual(order.state, "sale")
        self.assertTrue(order.project_ids)
        self.assertEqual(json.loads(response.text)["accepted"], 2)
