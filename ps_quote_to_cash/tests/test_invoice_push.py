import time

from odoo import Command
from odoo.tests import TransactionCase, new_test_user, tagged

from .common import Q2CMixin

DEAL = "19077001"


@tagged("post_install", "-at_install")
class TestInvoicePush(Q2CMixin, TransactionCase):
    """An automation rule pushes a posted invoice's status to the CRM deal its order came from,
    through the hub's outbox: once, with the latest values, after the user's transaction."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        company = cls.env.company
        if not cls.env["account.journal"].search_count([("type", "=", "sale"), ("company_id", "=", company.id)]):
            cls.env["account.chart.template"].try_loading("generic_coa", company, install_demo=False)
        cls.accountant = new_test_user(
            cls.env, "q2c_accountant", groups="account.group_account_invoice,sales_team.group_sale_salesman")
        customer = cls.env["res.partner"].create({"name": "Northwind Legal", "is_company": True})
        product = cls.env["product.product"].create({
            "name": "Licence", "type": "consu", "invoice_policy": "order", "list_price": 1200.0})
        cls.order = cls.env["sale.order"].create({
            "partner_id": customer.id,
            "order_line": [Command.create({"product_id": product.id, "product_uom_qty": 2})],
        })
        cls.order.action_confirm()
        cls.env["ps.hub.binding"]._hub_bind(cls.hubspot, "deal", DEAL, cls.order)  # closed-won made it
        cls.Event = cls.env["ps.hub.event"]

        Fields = cls.env["ir.model.fields"]
        cls.mapping = cls.env.ref("ps_quote_to_cash.mapping_hubspot_invoice_status")
        cls.action = cls.env["ir.actions.server"].create({
            "name": "Push invoice status to the HubSpot deal",
            "model_id": cls.env["ir.model"]._get_id("account.move"),
            "state": "ps_hub_push",
            "ps_hub_connector_id": cls.hubspot.id,
            "ps_hub_mapping_id": cls.mapping.id,
            "ps_hub_binding_path": "invoice_line_ids.sale_line_ids.order_id",
        })
        cls.rule = cls.env["base.automation"].create({
            "name": "Invoice posted: status to the CRM",
            "model_id": cls.env["ir.model"]._get_id("account.move"),
            "trigger": "on_create_or_write",
            "trigger_field_ids": [Command.set([Fields._get("account.move", name).id
                                               for name in ("state", "ref", "payment_state")])],
            "filter_domain": "[('state', '=', 'posted'), ('move_type', '=', 'out_invoice')]",
        })
        cls.rule.write({"action_server_ids": [Command.link(cls.action.id)]})

    def pushes(self, invoice):
        return self.Event.search([("direction", "=", "out"), ("res_model", "=", "account.move"),
                                  ("res_id", "=", invoice.id)])

    def test_posting_and_three_quick_edits_push_once_the_latest_state(self):
        invoice = self.order._create_invoices().with_user(self.accountant)
        self.assertFalse(self.pushes(invoice), "a draft is not pushed")
        invoice.action_post()
        for reference in ("PO-1", "PO-2", "PO-3"):
            invoice.ref = reference
        push = self.pushes(invoice)
        self.assertEqual(len(push), 1, "the edits made before the worker ran collapsed into one push")
        self.assertFalse(self.fake_hubspot.requests, "the user's transaction called nobody")

        self.process()
        self.assertEqual(push.state, "done", push.last_error)
        calls = [(r.method, r.path) for r in self.fake_hubspot.requests]
        self.assertEqual(calls, [("PATCH", f"/crm/v3/objects/deals/{DEAL}")], "exactly one push")
        self.assertEqual(self.fake_hubspot.requests[0].body["properties"], {
            "invoice_status": "posted", "invoice_number": invoice.name, "invoice_reference": "PO-3",
            "invoice_amount": invoice.amount_total, "invoice_payment_status": invoice.payment_state})
        self.assertEqual(push.mapping_version_id, self.mapping, "the push records the mapping version that gave it")
        self.assertEqual(self.fake_hubspot.deals[DEAL]["properties"]["invoice_reference"], "PO-3")

        # the same version again (the rule run by hand on the unchanged invoice) adds nothing
        self.action.with_context(active_model="account.move", active_ids=invoice.ids).run()
        self.assertEqual(self.pushes(invoice), push)

        # HubSpot tells us the deal changed: our own change, not processed again
        echo, _dup = self.enqueue(self.hubspot, [{
            "eventId": 9001, "subscriptionType": "deal.propertyChange", "objectId": int(DEAL),
            "propertyName": "invoice_reference", "propertyValue": "PO-3", "occurredAt": int(time.time() * 1000)}])
        self.process()
        self.assertEqual((echo.state, echo.reason), ("ignored", "echo"))
        self.assertIn(f"Echo of our push {push.id}", echo.ignore_reason)
        self.assertEqual(len(self.fake_hubspot.requests), 1, "no read of the deal, no push back")

    def test_a_new_version_of_the_mapping_gives_the_next_pushes(self):
        draft = self.mapping.action_new_draft()
        draft = self.env["ps.hub.mapping"].browse(draft["res_id"])
        draft.line_ids.filtered(lambda line: line.source_path != "state").unlink()
        draft.action_activate()
        invoice = self.order._create_invoices().with_user(self.accountant)
        invoice.action_post()
        push = self.pushes(invoice)
        self.assertEqual(push.payload["properties"], {"invoice_status": "posted"})
        self.assertEqual(push.mapping_version_id, draft)
        self.assertEqual((self.mapping.state, draft.version), ("archived", 2))

    def test_an_invoice_of_no_crm_deal_is_not_pushed(self):
        order = self.order.copy()
        order.action_confirm()
        invoice = order._create_invoices().with_user(self.accountant)
        invoice.action_post()
        self.assertFalse(self.pushes(invoice))
