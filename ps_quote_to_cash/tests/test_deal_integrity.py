"""Every order equals its deal: amounts, discounts, prices, pricelists, currency, and the vendor's word."""

from odoo.tests import TransactionCase, tagged

from ps_hub_fakes import load_fixture

from .common import Q2CMixin


def closed_won(event_id, deal_id):
    return {"eventId": event_id, "subscriptionType": "deal.propertyChange", "objectId": int(deal_id),
            "propertyName": "dealstage", "propertyValue": "closedwon", "occurredAt": 1763632800000 + event_id}


class DealCase(Q2CMixin, TransactionCase):
    def close(self, *deal_ids, base=700):
        events, _dup = self.enqueue(self.hubspot, [closed_won(base + i, d) for i, d in enumerate(deal_ids)])
        self.process()
        return events.sorted("idempotency_key")

    def nothing_made_for(self, company_name, deal_model, deal_id, connector=None):
        self.assertFalse(self.env["res.partner"].search([("name", "=", company_name)]), "no customer created")
        self.assertFalse(self.env["sale.order"].search([("partner_id.name", "=", company_name)]))
        self.assertIsNone(self.env["ps.hub.binding"]._hub_lookup(connector or self.hubspot, deal_model, deal_id))


@tagged("post_install", "-at_install")
class TestAmounts(DealCase):
    def test_amount_differing_from_lines_is_an_exception_and_makes_nothing(self):
        """Deal of 60,000 whose lines add up to 53,000: an amount_mismatch with both figures, nothing made."""
        fake = self.fake_hubspot
        fake.add_company(8101, "Mismatch Ltd", vat_number="GB999000111", domain="mismatch.example")
        fake.add_deal("4101", "8101", None, [
            {"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 200, "price": 165},
            {"name": "Blueprint", "hs_sku": "PS-BLUEPRINT-MS", "quantity": 1, "price": 20000},
        ], amount="60000", dealname="Mismatch rollout")
        fake.add_deal("4102", "8102", None, [
            {"name": "Retainer", "hs_sku": "PS-RETAINER", "quantity": 2, "price": 500}], dealname="Fine deal")
        bad, good = self.close("4101", "4102")
        self.assertEqual((bad.state, bad.error_class, bad.reason), ("exception", "business", "amount_mismatch"))
        self.assertIn("60,000.00", bad.last_error)
        self.assertIn("53,000.00", bad.last_error)
        self.assertEqual(bad.ctx_amount, 60000, "the desk shows the deal's amount")
        self.nothing_made_for("Mismatch Ltd", "deal", "4101")
        self.assertEqual((good.state, good._hub_record().amount_untaxed), ("done", 1000), "the other deal goes on")

    def test_the_currency_rounding_is_tolerated_more_is_not(self):
        fake = self.fake_hubspot
        lines = [{"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 3, "price": "33.33"}]  # 99.99
        fake.add_deal("4103", "8103", None, lines, amount="100.00")
        fake.add_deal("4104", "8104", None, lines, amount="100.01")
        rounding, off = self.close("4103", "4104")
        self.assertEqual(rounding.state, "done", rounding.last_error)
        self.assertEqual(rounding._hub_record().amount_untaxed, 99.99, "the lines, as the CRM priced them")
        self.assertEqual((off.state, off.reason), ("exception", "amount_mismatch"))
        self.assertIn("EUR 100.01", off.last_error)
        self.assertIn("EUR 99.99", off.last_error)

    def test_order_odoo_computes_differently_is_an_exception(self):
        """A tax included in a product's price would make the order less than the deal: caught."""
        group = self.env["account.tax.group"].create({"name": "VAT", "company_id": self.europe.id})
        tax = self.env["account.tax"].create({
            "name": "VAT 20 % included", "amount": 20, "amount_type": "percent", "type_tax_use": "sale",
            "price_include_override": "tax_included", "company_id": self.europe.id, "tax_group_id": group.id,
            "country_id": self.env.ref("base.uk").id})
        self.products.filtered(lambda p: p.default_code == "PS-RETAINER").taxes_id = tax
        won = self.close("19077001")
        self.assertEqual((won.state, won.reason), ("exception", "amount_mismatch"))
        self.assertIn("EUR 97,000.00 untaxed, not the deal's EUR 98,400.00", won.last_error)
        self.nothing_made_for("Northwind Legal LLP", "deal", "19077001")

    def test_blank_price_is_an_exception_not_zero(self):
        fake = self.fake_hubspot
        fake.add_company(8105, "Blank Price Ltd")
        fake.add_deal("4105", "8105", None, [
            {"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 10, "price": 100},
            {"name": "Free lunch?", "hs_sku": "PS-RETAINER", "quantity": 1, "price": ""}])
        event = self.close("4105")
        self.assertEqual((event.state, event.reason), ("exception", "missing_price"))
        self.assertIn("Free lunch?", event.last_error)
        self.nothing_made_for("Blank Price Ltd", "deal", "4105")


@tagged("post_install", "-at_install")
class TestDiscounts(DealCase):
    def test_hubspot_line_discounts(self):
        """Percentage, amount off each unit, and HubSpot's own net amount: the order is the deal."""
        fake = self.fake_hubspot
        fake.add_deal("4201", "8201", None, [
            # 10 % of the line: 66,000 - 6,600
            {"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 400, "price": 165,
             "hs_discount_percentage": 10},
            # 1,500 off the unit: 6.25 %
            {"name": "Blueprint", "hs_sku": "PS-BLUEPRINT-MS", "quantity": 1, "price": 24000, "discount": 1500},
            # 15.50 off each of 3 units of 2,800 (0.5536 %...): a net unit price of 2,784.50
            {"name": "Retainer", "hs_sku": "PS-RETAINER", "quantity": 3, "price": 2800, "discount": "15.5"},
            # only HubSpot's net amount says there is a discount: 300 -> 270
            {"name": "Discovery", "hs_sku": "PS-DISCOVERY-FF", "quantity": 3, "price": 100, "amount": "270"},
        ], dealname="Discounted rollout")
        self.assertEqual(fake.deals["4201"]["properties"]["amount"], "90523.5")
        event = self.close("4201")
        self.assertEqual(event.state, "done", event.last_error)
        order = event._hub_record()
        self.assertEqual(order.amount_untaxed, 90523.5, "the order equals the deal's amount")
        self.assertEqual(
            [(line.price_unit, line.discount, line.price_subtotal) for line in order.order_line],
            [(165, 10, 59400), (24000, 6.25, 22500), (2784.5, 0, 8353.5), (100, 10, 270)])
        read = fake.calls("POST", "/crm/v3/objects/line_items/batch/read")[0]
        self.assertTrue({"price", "discount", "hs_discount_percentage", "amount"} <= set(read.body["properties"]))

    def test_salesforce_discount_and_total_price(self):
        """10 x 1,000 at 20 %: an order of 8,000, the Amount, not 10,000."""
        sf = self.fake_salesforce
        sf.add_opportunity("0065e00000DiScAAAV", "0015e00000QrStUAAV", [
            {"ProductCode": "PS-CONSULT-TM", "Name": "Consulting", "Quantity": 10, "UnitPrice": 1000,
             "Discount": 20}], Name="Contoso discounted")
        self.assertEqual(sf.opportunities["0065e00000DiScAAAV"]["Amount"], 8000)
        body = sf.outbound_message([{"opportunity_id": "0065e00000DiScAAAV", "account_id": "0015e00000QrStUAAV",
                                     "amount": 8000, "name": "Contoso discounted"}])
        event, _dup = self.enqueue(self.salesforce, body)
        self.process()
        self.assertEqual(event.state, "done", event.last_error)
        order = event._hub_record()
        self.assertEqual(order.amount_untaxed, 8000)
        self.assertEqual((order.order_line.price_unit, order.order_line.discount), (1000, 20))
        query = sf.calls("GET", "/services/data/v62.0/query")[0].query["q"]
        self.assertIn("Discount", query)
        self.assertIn("TotalPrice", query)


@tagged("post_install", "-at_install")
class TestPricelistsAndCurrency(DealCase):
    def test_partner_pricelist_discount_never_applies_on_crm_prices(self):
        self.env.ref("base.user_root").group_ids |= self.env.ref("sale.group_discount_per_so_line")
        pricelist = self.env["product.pricelist"].create({
            "name": "Loyal customers -10%", "currency_id": self.env.ref("base.EUR").id, "company_id": False,
            "item_ids": [(0, 0, {"applied_on": "3_global", "compute_price": "percentage", "percent_price": 10})],
        })
        partner = self.env["res.partner"].create({"name": "Northwind", "is_company": True, "vat": "GB123456782"})
        partner.with_company(self.europe).property_product_pricelist = pricelist
        events, _dup = self.enqueue(self.hubspot, load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.process()
        won = events.sorted("idempotency_key")[0]
        self.assertEqual(won.state, "done", won.last_error)
        order = won._hub_record()
        self.assertEqual(order.partner_id, partner)
        self.assertEqual(order.amount_untaxed, 98400, "the CRM's price, not 10 % less")
        self.assertEqual(set(order.order_line.mapped("discount")), {0})
        self.assertEqual(sorted(order.order_line.mapped("price_unit")), [165, 2800, 24000])

    def test_deal_without_currency_is_in_the_company_currency(self):
        """Not in the currency of the partner's pricelist: the company's, on an explicit pricelist."""
        usd_pricelist = self.env["product.pricelist"].create({
            "name": "US customers", "currency_id": self.env.ref("base.USD").id, "company_id": False})
        partner = self.env["res.partner"].create({"name": "Northwind", "is_company": True, "vat": "GB123456782"})
        partner.with_company(self.europe).property_product_pricelist = usd_pricelist
        self.fake_hubspot.deals["19077001"]["properties"]["deal_currency_code"] = ""
        events, _dup = self.enqueue(self.hubspot, load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.process()
        order = events.sorted("idempotency_key")[0]._hub_record()
        self.assertEqual((order.company_id, order.currency_id.name), (self.europe, "EUR"))
        self.assertEqual(order.pricelist_id.currency_id.name, "EUR")
        self.assertFalse(order.pricelist_id.item_ids, "a pricelist that changes no price")
        self.assertEqual(order.amount_untaxed, 98400)


@tagged("post_install", "-at_install")
class TestVendorDecides(DealCase):
    def test_salesforce_message_claiming_won_is_checked_over_rest(self):
        sf = self.fake_salesforce
        sf.opportunities["0065e00000GhIjKAAV"].update(IsWon=False, IsClosed=False, StageName="Negotiation/Review")
        event, _dup = self.enqueue(self.salesforce,
            load_fixture("salesforce/outbound_message_opportunity.xml").encode())
        self.process()
        self.assertEqual((event.state, event.reason), ("ignored", "not_applicable"))
        self.assertIn("not won in Salesforce", event.ignore_reason)
        self.assertIn("Negotiation/Review", event.ignore_reason)
        self.nothing_made_for("Contoso Engineering Inc.", "Opportunity", "0065e00000GhIjKAAV", self.salesforce)
        self.assertEqual(len(sf.calls("GET", "/services/data/v62.0/sobjects/Opportunity/0065e00000GhIjKAAV")), 1)
        self.assertFalse(sf.calls("GET", "/services/data/v62.0/sobjects/Account/"), "nothing read past the answer")

    def test_salesforce_order_follows_rest_not_the_message(self):
        """The message's amount, currency, legal entity and PO are only claims: REST's are used."""
        body = self.fake_salesforce.outbound_message([{
            "opportunity_id": "0065e00000GhIjKAAV", "account_id": "0015e00000QrStUAAV", "amount": 1,
            "currency": "EUR", "legal_entity": "PS Consulting Europe", "po_number": "FORGED-1"}])
        event, _dup = self.enqueue(self.salesforce, body)
        self.process()
        self.assertEqual(event.state, "done", event.last_error)
        order = event._hub_record()
        self.assertEqual((order.company_id, order.currency_id.name, order.client_order_ref, order.amount_untaxed),
                         (self.inc, "USD", "4500098812", 151500))
        self.assertEqual((event.ctx_amount, event.ctx_currency), (151500, "USD"))

    def test_hubspot_deal_no_longer_won_is_ignored(self):
        self.fake_hubspot.deals["19077001"]["properties"]["dealstage"] = "contractsent"
        won = self.close("19077001")
        self.assertEqual((won.state, won.reason), ("ignored", "not_applicable"))
        self.assertIn("'contractsent'", won.ignore_reason)
        self.nothing_made_for("Northwind Legal LLP", "deal", "19077001")
        self.assertFalse(self.fake_hubspot.calls("GET", "/crm/v3/objects/companies/"))

    def test_retried_event_of_a_deal_reopened_meanwhile_is_ignored(self):
        self.products.filtered(lambda p: p.default_code == "PS-RETAINER").default_code = "OLD-RETAINER"
        won = self.close("19077001")
        self.assertEqual((won.state, won.reason), ("exception", "missing_product"))
        self.products.filtered(lambda p: p.default_code == "OLD-RETAINER").default_code = "PS-RETAINER"
        self.fake_hubspot.deals["19077001"]["properties"]["dealstage"] = "closedlost"
        won.with_user(self.user_finance).action_retry()
        self.process()
        self.assertEqual(won.state, "ignored")
        self.assertIn("'closedlost'", won.ignore_reason)
        self.nothing_made_for("Northwind Legal LLP", "deal", "19077001")
