import os
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..services import crypto
from .common import TEST_KEY, HubCase, secret_key_patcher


@tagged("post_install", "-at_install")
class TestSecrets(HubCase):
    def test_secret_encrypted_at_rest(self):
        self.env.cr.execute("SELECT signing_secret_enc, auth_secret_enc FROM ps_hub_connector WHERE id = %s",
                            [self.hubspot.id])
        signing, auth = self.env.cr.fetchone()
        self.assertNotIn("hubspot-client-secret", signing)
        self.assertNotIn("pat-test-token", auth)
        self.assertEqual(crypto.decrypt(signing, [TEST_KEY]), "hubspot-client-secret")
        self.assertEqual(self.hubspot._hub_secret("auth_secret_enc"), "pat-test-token")

    def test_write_only_in_form(self):
        connector = self.hubspot.with_user(self.user_manager)
        self.assertFalse(connector.signing_secret)
        self.assertTrue(connector.has_signing_secret)
        connector.signing_secret = "rotated"
        self.assertEqual(self.hubspot._hub_secret("signing_secret_enc"), "rotated")
        connector.write({"signing_secret": ""})  # an empty input leaves the secret unchanged
        self.assertEqual(self.hubspot._hub_secret("signing_secret_enc"), "rotated")

    def test_rotation(self):
        self.hubspot.action_rotate_signing_secret()
        self.hubspot.signing_secret = "new-secret"
        self.assertEqual(self.hubspot._hub_secret("signing_secret_previous_enc"), "hubspot-client-secret")
        self.assertEqual(self.hubspot._hub_secret("signing_secret_enc"), "new-secret")
        self.hubspot.action_clear_previous_secret()
        self.assertIsNone(self.hubspot._hub_secret("signing_secret_previous_enc"))

    def test_refuses_without_key(self):
        with secret_key_patcher(""), self.assertRaisesRegex(UserError, "ps_hub_secret_key"):
            self.hubspot.signing_secret = "x"

    def test_other_key_cannot_decrypt(self):
        with secret_key_patcher(crypto.generate_key()), self.assertRaises(crypto.SecretUndecryptable):
            self.hubspot._hub_secret("signing_secret_enc")

    def test_secret_not_in_export_or_read(self):
        self.user_manager.group_ids += self.env.ref("base.group_allow_export")
        connector = self.hubspot.with_user(self.user_manager)
        data = connector.read(["signing_secret", "auth_secret"])[0]
        self.assertFalse(data["signing_secret"] or data["auth_secret"])
        exported = connector.export_data(["name", "signing_secret", "auth_secret"])["datas"]
        self.assertNotIn("hubspot-client-secret", repr(exported))
        with mute_logger("odoo.models"), self.assertRaises(AccessError):
            connector.read(["signing_secret_enc"])

    def test_key_sources_and_rotation(self):
        with patch.dict(os.environ, {"PS_HUB_SECRET_KEY": "from-env"}):
            self.assertEqual(crypto.configured_keys("a, b"), ["a", "b"], "odoo.conf wins")
            self.assertEqual(crypto.configured_keys(None), ["from-env"])
        old, new = crypto.generate_key(), crypto.generate_key()
        token = crypto.encrypt("s3cret", [old])
        self.assertEqual(crypto.decrypt(token, [new, old]), "s3cret", "old key still decrypts")
        self.assertNotEqual(crypto.encrypt("s3cret", [new, old]), token)
