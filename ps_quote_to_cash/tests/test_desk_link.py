from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

from ps_hub_fakes import load_fixture

from .common import Q2CMixin


@tagged("post_install", "-at_install")
class TestDeskLink(Q2CMixin, TransactionCase):
    """The desk links a quote-to-cash event only to the kind of record its type produces."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.seller = new_test_user(
            cls.env, "q2c_finance", company_id=cls.company.id, company_ids=[cls.company.id],
            groups="ps_integration_hub.group_hub_finance,sales_team.group_sale_salesman_all_leads")

    def test_declared_links(self):
        Event = self.env["ps.hub.event"]
        for connector, event_type, linkable in (
            (self.hubspot, "deal.propertyChange", {"sale.order": "deal"}),
            (self.salesforce, "Opportunity.outbound_message", {"sale.order": "Opportunity"}),
            (self.hubspot, "company.propertyChange", {"res.partner": "company"}),
            (self.hubspot, "company.creation", {"res.partner": "company"}),
            (self.hubspot, "contact.creation", {}),
            (self.stripe, "invoice.paid", {}),
        ):
            with self.subTest(event_type=event_type):
                event = Event.new({"connector_id": connector.id, "event_type": event_type})
                self.assertEqual(event._hub_linkable_models(), linkable)

    def test_deal_exception_links_to_an_order_of_its_company_and_binds_it(self):
        self.fake_hubspot.deals["19077001"]["properties"]["legal_entity"] = "PS Consulting Mars"
        events, _dup = self.enqueue(self.hubspot, load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.process()
        won = events.sorted("idempotency_key")[0]
        self.assertEqual((won.state, won.reason), ("exception", "unknown_legal_entity"))
        customer = self.env["res.partner"].create({"name": "Northwind Legal LLP", "is_company": True})
        ours, theirs = self.env["sale.order"].create([
            {"partner_id": customer.id, "company_id": self.company.id},
            {"partner_id": customer.id, "company_id": self.europe.id},
        ])
        desk = won.with_user(self.seller)
        with self.assertRaisesRegex(UserError, "cannot be linked to a Contact"):
            desk.action_link(customer, "company")
        with self.assertRaises(AccessError):  # an order of a company the user is not in
            desk.action_link(theirs, "deal")
        self.assertEqual(won.state, "exception")
        wizard = Form(self.env["ps.hub.event.action.wizard"].with_user(self.seller).with_context(
            active_ids=won.ids, default_action="link"))
        wizard.record_ref = f"sale.order,{ours.id}"
        self.assertEqual(wizard.binding_model, "deal")
        wizard.save().action_confirm()
        self.assertEqual((won.state, won._hub_record()), ("done", ours))
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", won.external_id), ours,
                         "a replay of the deal finds the order")
