from odoo.tests import TransactionCase, tagged

from .common import Q2CMixin


@tagged("post_install", "-at_install")
class TestSalesforcePagination(Q2CMixin, TransactionCase):
    """Salesforce answers a SOQL query in batches (2,000 records by default) and a
    nextRecordsUrl to the next one: an opportunity's products may span several."""

    def test_order_has_the_products_of_every_page(self):
        fake = self.fake_salesforce
        skus = ["PS-CONSULT-TM", "PS-BLUEPRINT-MS", "PS-RETAINER", "PS-DISCOVERY-FF", "PS-CONSULT-TM"]
        fake.add_opportunity("0065e00000PgNtDAAV", "0015e00000QrStUAAV", [
            {"ProductCode": sku, "Name": f"Line {i}", "Quantity": 1.0, "UnitPrice": 1000.0 * (i + 1)}
            for i, sku in enumerate(skus)
        ])
        fake.query_batch_size = 2
        body = fake.outbound_message([{
            "opportunity_id": "0065e00000PgNtDAAV", "account_id": "0015e00000QrStUAAV", "amount": 15000,
            "currency": "USD", "name": "Paged opportunity", "po_number": "PO-PAGED",
            "legal_entity": "PS Consulting Inc."}])
        events, _dup = self.enqueue(self.salesforce, body)
        self.process()
        self.assertEqual(events.state, "done", events.last_error)
        order = events._hub_record()
        self.assertEqual(sorted(order.order_line.mapped("price_unit")), [1000, 2000, 3000, 4000, 5000])
        self.assertEqual(order.amount_untaxed, 15000)
        queries = fake.calls("GET", "/services/data/v62.0/query")
        self.assertEqual(len(queries), 3, "the first batch and two nextRecordsUrl pages")
        self.assertRegex(queries[1].path, r"^/services/data/v62\.0/query/01g[A-Za-z0-9]{15}-2$")
