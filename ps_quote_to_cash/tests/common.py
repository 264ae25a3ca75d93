from odoo.addons.ps_integration_hub.tests.common import HubCaseMixin

SKUS = {
    "PS-CONSULT-TM": "Implementation consulting",
    "PS-BLUEPRINT-MS": "Solution blueprint",
    "PS-RETAINER": "Retainer",
    "PS-DISCOVERY-FF": "Discovery",
}


class Q2CMixin(HubCaseMixin):
    """Legal entities, products and fake CRMs for the closed-won flows."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_q2c()

    def setUp(self):
        super().setUp()
        # every test starts from the vendors' default data, whatever the one before changed
        self.fake_hubspot.reset()
        self.fake_salesforce.reset()

    @classmethod
    def setup_q2c(cls):
        cls.setup_hub()
        cls.start_fake_vendors()
        # the test connectors are sandboxes that someone allowed to make orders
        cls.env["ps.hub.event.type"].search([("handler_model", "=like", "ps.q2c.%")])._hub_switch(
            cls.hubspot | cls.salesforce)
        (cls.env.ref("base.EUR") | cls.env.ref("base.USD")).active = True
        cls.europe = cls.env["res.company"].create({
            "name": "PS Consulting Europe", "currency_id": cls.env.ref("base.EUR").id})
        cls.inc = cls.env["res.company"].create({
            "name": "PS Consulting Inc.", "currency_id": cls.env.ref("base.USD").id})
        cls.products = cls.env["product.product"].create([
            {"name": name, "default_code": sku, "type": "service", "service_tracking": "task_in_project",
             "list_price": 1.0}
            for sku, name in SKUS.items()
        ])
