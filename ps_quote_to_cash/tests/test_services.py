from decimal import Decimal
from types import SimpleNamespace

from odoo.tests import BaseCase, tagged

from odoo.addons.ps_integration_hub.services.errors import BusinessError, IgnoreEvent

from ps_hub_fakes import FakeHubSpot, FakeSalesforce, load_json

from ..services import hubspot, salesforce
from ..services.engagement import Line, is_free_mail, is_won_stage, line_net_total, order_line_prices


def prices(line, currency_digits=2, price_digits=2, discount_digits=2):
    return order_line_prices(line, currency_digits=currency_digits, price_digits=price_digits,
                             discount_digits=discount_digits)


def line(quantity, price, **kwargs):
    return Line(external_id="1", sku="S", name="n", quantity=quantity, price_unit=price, **kwargs)


@tagged("post_install", "-at_install")
class TestPricing(BaseCase):
    def test_net_total_follows_the_crm(self):
        self.assertEqual(line_net_total(line(10, 234.56, discount=20), 2), Decimal("1876.48"),
                         "HubSpot takes the % of the line's total")
        self.assertEqual(line_net_total(line(3, 2800, unit_discount=15.5), 2), Decimal("8353.50"))
        self.assertEqual(line_net_total(line(3, 100, total=270), 2), 270, "the CRM's own total first")

    def test_order_line_keeps_price_and_discount_when_it_can(self):
        self.assertEqual(prices(line(10, 1000, discount=20, total=8000)), (1000, 20))
        self.assertEqual(prices(line(10, 234.56, discount=20)), (234.56, 20))
        self.assertEqual(prices(line(1, 24000, unit_discount=1500)), (24000, 6.25))
        self.assertEqual(prices(line(5, 99.5)), (99.5, 0))

    def test_order_line_falls_back_to_the_net_unit_price(self):
        self.assertEqual(prices(line(3, 2800, unit_discount=15.5)), (2784.5, 0))
        # a net unit price Odoo cannot write either: no representation, the caller raises
        self.assertIsNone(prices(line(3, 1000, total=1000)))
        self.assertEqual(prices(line(3, 1000, total=1000), discount_digits=4), (1000, 66.6667))

    def test_free_mail(self):
        for domain in ("gmail.com", "GMX.de", "gmx.net", "outlook.fr", "proton.me", "icloud.com", "yahoo.co.uk"):
            self.assertTrue(is_free_mail(domain), domain)
        for domain in ("northwind-legal.example", "gmxx.com", "notgmail.com", None):
            self.assertFalse(is_free_mail(domain), domain)
        self.assertTrue(is_free_mail("isp.example", ["other.example", " isp.example "]))


@tagged("post_install", "-at_install")
class TestAdapters(BaseCase):
    def test_hubspot_line_reads_discounts_and_blank_price(self):
        item = {"id": "1", "properties": {"hs_sku": "S", "quantity": "2", "price": "", "discount": "5",
                                          "hs_discount_percentage": "", "amount": "190.00"}}
        parsed = hubspot.line(item)
        self.assertEqual((parsed.price_unit, parsed.unit_discount, parsed.discount, parsed.total),
                         (None, 5, None, 190))

    def test_hubspot_fake_amount_is_hubspots(self):
        self.assertEqual(FakeHubSpot.line_amount({"quantity": 10, "price": "234.56", "hs_discount_percentage": 20}),
                         "1876.48")

    def test_salesforce_engagement_from_rest(self):
        fake = FakeSalesforce()
        opportunity = fake.opportunities["0065e00000GhIjKAAV"]
        records = load_json("salesforce/opportunity_line_items_query.json")["records"]
        records[0] = dict(records[0], Discount=10.0, TotalPrice=99900.0)
        engagement = salesforce.engagement(dict(opportunity, CurrencyIsoCode=None),
                                           load_json("salesforce/account_0015e00000QrStUAAV.json"), records)
        self.assertEqual((engagement.amount, engagement.currency, engagement.legal_entity),
                         (151500, None, "PS Consulting Inc."), "no currency: none is guessed from the account")
        self.assertEqual((engagement.lines[0].discount, engagement.lines[0].total), (10, 99900))
        self.assertFalse(salesforce.is_won(dict(opportunity, IsWon=False)))
        self.assertTrue(salesforce.is_won(opportunity))


@tagged("post_install", "-at_install")
class TestWonStages(BaseCase):
    """The services are told which stages are won (the Deal stage value map's, read by the models)."""

    def test_won_stage_compares_as_value_maps_do(self):
        self.assertTrue(is_won_stage("98765432", {"closedwon", "98765432"}))
        self.assertTrue(is_won_stage(" ClosedWon", {"closedwon"}), "any case, without surrounding space")
        self.assertTrue(is_won_stage("closed won", {"Closed Won"}))
        self.assertFalse(is_won_stage("closedwon", set()))
        self.assertFalse(is_won_stage("closedlost", {"closedwon"}))
        self.assertFalse(is_won_stage(None, {"closedwon"}))
        self.assertFalse(is_won_stage(" ", {" "}), "an empty stage is never won")

    def test_hubspot_webhook_is_closed_won_at_a_given_stage(self):
        event = {"subscriptionType": "deal.propertyChange", "objectId": 4001, "propertyName": "dealstage",
                 "propertyValue": "98765432"}
        self.assertFalse(hubspot.is_closed_won(event, hubspot.WON_STAGES))
        self.assertTrue(hubspot.is_closed_won(dict(event, propertyValue="closedwon"), hubspot.WON_STAGES))
        self.assertTrue(hubspot.is_closed_won(event, frozenset({"closedwon", "98765432"})))
        self.assertFalse(hubspot.is_closed_won(dict(event, propertyName="dealname"), {"98765432"}))
        self.assertFalse(hubspot.is_closed_won(dict(event, subscriptionType="deal.creation"), {"98765432"}))
        self.assertTrue(hubspot.is_stage_change(event))
        self.assertFalse(hubspot.is_stage_change(dict(event, propertyName="amount")))

    def test_hubspot_deal_is_read_when_at_a_given_stage(self):
        deal = FakeHubSpot().deals["19077001"]
        deal = dict(deal, properties=dict(deal["properties"], dealstage="98765432"), associations={})
        paths = []

        def request(method, path, **kwargs):
            paths.append(path)
            return SimpleNamespace(json=lambda: deal)
        with self.assertRaises(IgnoreEvent) as caught:
            hubspot.read_closed_won(request, "19077001", {}, hubspot.WON_STAGES)
        self.assertIn("at stage '98765432' in HubSpot now, not a won stage ('closedwon')", str(caught.exception))
        with self.assertRaises(IgnoreEvent) as caught:
            hubspot.read_closed_won(request, "19077001", {}, frozenset())
        self.assertIn("not a won stage (none)", str(caught.exception))
        # past the stage: the deal without company is the next thing it finds
        with self.assertRaises(BusinessError) as caught:
            hubspot.read_closed_won(request, "19077001", {}, {"closedwon", "98765432"})
        self.assertEqual(caught.exception.reason, "missing_customer")
        self.assertEqual(paths, ["/crm/v3/objects/deals/19077001"] * 3)

    def test_salesforce_message_is_won_by_is_won_or_a_given_stage(self):
        renamed = {"Id": "0065e00000WonSgAAA", "StageName": "Won - Signed"}
        self.assertFalse(salesforce.is_closed_won(renamed, salesforce.WON_STAGES))
        self.assertTrue(salesforce.is_closed_won(renamed, {"Closed Won", "won - signed"}))
        self.assertTrue(salesforce.is_closed_won(dict(renamed, IsWon="false"), {"Won - Signed"}))
        self.assertTrue(salesforce.is_closed_won(dict(renamed, IsWon="true"), frozenset()), "IsWon says it")
        self.assertTrue(salesforce.is_closed_won({"StageName": "Closed Won", "IsWon": None}, salesforce.WON_STAGES))
        self.assertFalse(salesforce.is_closed_won({"StageName": "Closed Lost", "IsWon": "false"},
                                                  salesforce.WON_STAGES))
        # the REST read decides by IsWon alone, whatever the stage is called
        self.assertFalse(salesforce.is_won({"IsWon": False, "StageName": "Won - Signed"}))
        self.assertTrue(salesforce.is_won({"IsWon": True, "StageName": "Won - Signed"}))
