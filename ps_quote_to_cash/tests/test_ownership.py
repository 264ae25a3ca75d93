"""Quote to cash's ownership rules: HubSpot owns a synchronised customer's identity and
address, Odoo its VAT number and what a won deal became (order lines, project)."""

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, new_test_user, tagged

from .common import Q2CMixin


@tagged("post_install", "-at_install")
class TestQuoteToCashOwnership(Q2CMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.customer = cls.env["res.partner"].create({
            "name": "Northwind Legal LLP", "is_company": True, "vat": "GB123456782", "phone": "+44 20 0000 0000"})
        cls.env["ps.hub.binding"]._hub_bind(cls.hubspot, "company", "5500071", cls.customer)
        cls.seller = new_test_user(cls.env, "own_seller",
                                   groups="sales_team.group_sale_salesman_all_leads,base.group_partner_manager")

    def company_change(self, event_id, *changes):
        events, _dup = self.enqueue(self.hubspot, [
            {"eventId": event_id + i, "subscriptionType": "company.propertyChange", "objectId": 5500071,
             "propertyName": prop, "propertyValue": value, "occurredAt": 1763632800000 + event_id + i}
            for i, (prop, value) in enumerate(changes)])
        self.process()
        return events.sorted("idempotency_key")

    def test_quote_to_cash_declares_its_rules(self):
        owned = self.env["ps.hub.ownership.rule"]._hub_owned_fields()
        self.assertEqual(owned["res.partner"]["vat"].owner, "odoo")
        for name in ("name", "website", "phone", "street", "city", "zip"):
            self.assertEqual(owned["res.partner"][name][:3], ("hubspot", "bound", "company"), name)
        self.assertEqual(owned["sale.order"]["order_line"].owner, "odoo")
        self.assertEqual({name: rule.owner for name, rule in owned["project.project"].items()},
                         dict.fromkeys(("name", "user_id", "date_start", "date"), "odoo"))

    def test_a_vat_change_from_hubspot_does_not_overwrite_odoos(self):
        """A company.propertyChange through the engine: the VAT stays Odoo's, the phone is HubSpot's."""
        vat, phone = self.company_change(610, ("vat_number", "GB999999973"), ("phone", "+44 20 7946 0000"))
        self.assertEqual(self.customer.vat, "GB123456782", "Odoo owns the VAT")
        self.assertEqual(self.customer.phone, "+44 20 7946 0000", "HubSpot owns the phone")
        self.assertEqual(phone.state, "done", phone.last_error)
        self.assertEqual((vat.state, vat.reason), ("ignored", "owned_field"))
        self.assertIn("Tax ID (owned by Odoo)", vat.ignore_reason)
        self.assertEqual(vat._hub_record(), self.customer, "the event still points to its customer")
        self.assertEqual(vat.ctx_customer, "Northwind Legal LLP")

    def test_the_manager_hands_the_vat_to_hubspot(self):
        rule = self.env.ref("ps_quote_to_cash.ownership_rule_partner_vat")
        manager = self.user_manager
        rule.with_user(manager).write({"owner": "hubspot"})
        (event,) = self.company_change(620, ("vat_number", "GB999999973"))
        self.assertEqual((event.state, self.customer.vat), ("done", "GB999999973"))

    def test_a_seller_cannot_rename_a_hubspot_customer(self):
        customer = self.customer.with_user(self.seller)
        with self.assertRaisesRegex(UserError, "Name of Contact Northwind Legal LLP is owned by HubSpot"):
            customer.write({"name": "Northwind"})
        customer.write({"vat": "GB999999973", "email": "billing@northwind.example"})  # Odoo's, and no one's
        self.assertEqual(self.customer.vat, "GB999999973")
        other = self.env["res.partner"].with_user(self.seller).create({"name": "Walk-in client", "is_company": True})
        other.write({"name": "Walk-in client Ltd"})  # not a HubSpot company: Odoo's to edit
