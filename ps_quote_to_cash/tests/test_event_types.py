from odoo.tests import TransactionCase, tagged

from ps_hub_fakes import load_fixture

from .common import Q2CMixin


@tagged("post_install", "-at_install")
class TestEventTypes(Q2CMixin, TransactionCase):
    """Quote-to-cash declares its event types as data; a sandbox makes no orders unless told."""

    def test_quote_to_cash_declares_its_event_types(self):
        declared = {(t.system, t.code): (t.handler_model, t.res_model, t.binding_model, t.run_on_sandbox)
                    for t in self.env["ps.hub.event.type"].search([("handler_model", "=like", "ps.q2c.%")])}
        self.assertEqual(declared, {
            ("hubspot", "deal.propertyChange"): ("ps.q2c.hubspot.deal.handler", "sale.order", "deal", False),
            ("hubspot", "company.propertyChange"): ("ps.q2c.hubspot.company.handler", "res.partner", "company", True),
            ("hubspot", "company.creation"): ("ps.q2c.hubspot.company.handler", "res.partner", "company", True),
            ("salesforce", "Opportunity.outbound_message"):
                ("ps.q2c.salesforce.opportunity.handler", "sale.order", "Opportunity", False),
        })

    def test_a_sandbox_connector_makes_no_order_unless_switched_on(self):
        sandbox = self.hubspot.copy({"name": "HubSpot sandbox", "environment": "sandbox",
                                     "base_url": self.fake_hubspot.base_url})
        sandbox.auth_secret = "pat-test-token"
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        events, _dup = self.enqueue(sandbox, body)
        company, _dup = self.enqueue(sandbox, [{
            "eventId": 5, "subscriptionType": "company.propertyChange", "objectId": 5500071,
            "propertyName": "name", "propertyValue": "Renamed", "occurredAt": 1763632800000}])
        self.process()
        self.assertEqual(set(events.mapped("reason")), {"type_off"})
        self.assertEqual(set(events.mapped("state")), {"ignored"})
        self.assertIn("Closed-won deal (deal.propertyChange) is off for connector HubSpot sandbox",
                      events[0].ignore_reason)
        self.assertFalse(self.fake_hubspot.calls("GET", "/crm/v3/objects/deals/19077001"), "HubSpot is not even read")
        self.assertFalse(self.env["sale.order"].search([("partner_id.vat", "=", "GB123456782")]))
        self.assertEqual(company.state, "done", company.ignore_reason)

        deal_type = self.env.ref("ps_quote_to_cash.event_type_hubspot_deal_property_change")
        sandbox.event_type_activation_ids.filtered(lambda a: a.event_type_id == deal_type).enabled = True
        events.with_user(self.user_finance).action_retry()
        self.process()
        won = events.filtered(lambda e: e.reason != "not_applicable")
        self.assertEqual(won.state, "done", won.last_error)
        self.assertEqual(won._hub_record().state, "sale")
