from odoo.exceptions import UserError
from odoo.tests import TransactionCase, new_test_user, tagged

from odoo.addons.ps_integration_hub.tests.common import secret_key_patcher


@tagged("post_install", "-at_install")
class TestAcmeOwnership(TransactionCase):
    """A system added by a module can own fields like the hub's own systems."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.startClassPatcher(secret_key_patcher())
        cls.acme = cls.env["ps.hub.connector"].create({
            "name": "Acme test", "system": "acme", "signing_secret": "acme-secret", "auth_type": "none"})

    def test_acme_owns_a_contacts_email(self):
        Rule = self.env["ps.hub.ownership.rule"]
        self.assertIn(("acme", "Acme CRM"), Rule._selection_owner())
        Rule.create({"model_id": self.env["ir.model"]._get_id("res.partner"), "owner": "acme",
                     "field_id": self.env["ir.model.fields"]._get("res.partner", "email").id})
        contact = self.env["res.partner"].create({"name": "Ada", "email": "ada@example.com"})
        self.env["ps.hub.binding"]._hub_bind(self.acme, "contact", "c_1042", contact)
        user = new_test_user(self.env, "acme_contacts", groups="base.group_user,base.group_partner_manager")
        with self.assertRaisesRegex(UserError, "Email of Contact Ada is owned by Acme CRM"):
            contact.with_user(user).write({"email": "ada@elsewhere.example"})
        self.assertEqual(Rule._hub_filter_inbound("res.partner", "hubspot", {"email": "x@y.example"}),
                         ({}, ["email"]))
