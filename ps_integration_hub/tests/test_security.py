from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from .common import HubCase
from .test_worker import hs_event


@tagged("post_install", "-at_install")
class TestSecurity(HubCase):
    def test_finance_cannot_read_secrets(self):
        connector = self.hubspot.with_user(self.user_finance)
        for field in ("signing_secret_enc", "auth_secret_enc", "inbound_token"):
            with self.subTest(field), mute_logger("odoo.models"), self.assertRaises(AccessError):
                connector.read([field])
        self.assertFalse(connector.read(["signing_secret"])[0]["signing_secret"])
        with self.assertRaises(AccessError):
            connector.write({"signing_secret": "hijack"})
        for action in (connector.action_regenerate_token, connector.action_rotate_signing_secret,
                       connector.action_clear_previous_secret):
            with self.subTest(action.__name__), self.assertRaises(AccessError):
                action()
        self.assertEqual(self.hubspot._hub_secret("signing_secret_enc"), "hubspot-client-secret")

    def test_manager_configures_connectors(self):
        connector = self.env["ps.hub.connector"].with_user(self.user_manager).create({
            "name": "Managed", "system": "stripe", "signing_secret": "whsec_x", "auth_type": "none"})
        self.assertTrue(connector.has_signing_secret)
        self.assertIn("/ps_hub/in/", connector.inbound_url)
        old = connector.inbound_url
        connector.action_regenerate_token()
        self.assertNotEqual(connector.inbound_url, old)

    def test_events_are_company_scoped(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        other_connector = self.hubspot.copy({"name": "Other HubSpot", "company_id": other_company.id})
        mine, _dup = self.enqueue(self.hubspot, [hs_event(1)])
        theirs, _dup = self.enqueue(other_connector, [hs_event(2)])
        user = new_test_user(self.env, "hub_finance_main", groups="ps_integration_hub.group_hub_finance",
                             company_id=self.company.id, company_ids=[self.company.id])
        visible = self.env["ps.hub.event"].with_user(user).search([("id", "in", (mine | theirs).ids)])
        self.assertEqual(visible, mine)
        with self.assertRaises(AccessError):
            theirs.with_user(user).read(["state"])
        self.assertNotIn(other_connector, self.env["ps.hub.connector"].with_user(user).search([]))
