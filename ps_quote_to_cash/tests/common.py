from odoo.addons.ps_integration_hub.tests.common import HubCaseMixin

SKUS = {
    "PS-CONSULT-TM": "Implementation consulting",
    "PS-BLUEPRINT-MS": "Solution blueprint",
    "PS-RETAINER": "Retainer",
    "PS-DISCOVERY-FF": "Discovery",
}


def stage_change(event_id, deal_id, stage):
    """HubSpot's webhook of a deal moved to ``stage`` (a stage id: closedwon, or a custom
    pipeline's number)."""
    return {"eventId": event_id, "subscriptionType": "deal.propertyChange", "objectId": int(deal_id),
            "propertyName": "dealstage", "propertyValue": stage, "occurredAt": 1763632800000 + event_id}


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

    def deal_stage_map(self):
        """The Deal stage value map the module installs: its entries valued won are the won stages."""
        return self.env.ref("ps_quote_to_cash.value_map_deal_stage")

    def add_deal_stage(self, stage, value="won"):
        """An entry of the Deal stage value map, made as an integration manager makes it."""
        return self.env["ps.hub.value.map.entry"].with_user(self.user_manager).create({
            "value_map_id": self.deal_stage_map().id, "external_value": stage, "value": value})
