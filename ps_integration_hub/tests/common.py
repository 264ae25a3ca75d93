import json
import os
from contextlib import contextmanager
from unittest.mock import patch

from cryptography.fernet import Fernet

from odoo.tests import TransactionCase, new_test_user

from ..services import parsers

TEST_KEY = Fernet.generate_key().decode()


def secret_key_patcher(key=TEST_KEY):
    """The server's encryption key, as odoo.conf would give it (empty: none configured)."""
    from ..models.ps_hub_connector import PsHubConnector  # noqa: PLC0415
    return patch.object(PsHubConnector, "_hub_keys", lambda self: [key] if key else [])


@contextmanager
def patched_handler(env, handler, key=("hubspot", "deal.propertyChange")):
    """Make ``handler`` the only handler of ``key`` (no batch handler of an installed module)."""
    Model = type(env["ps.hub.event"])
    single, batch = Model._hub_handlers, Model._hub_batch_handlers

    def handlers(model):
        return {**single(model), key: handler}

    def batch_handlers(model):
        return {k: v for k, v in batch(model).items() if k != key}
    with patch.object(Model, "_hub_handlers", handlers), patch.object(Model, "_hub_batch_handlers", batch_handlers):
        yield


class HubCaseMixin:
    """Connectors of every system and users of each integration group."""

    @classmethod
    def setup_hub(cls):
        cls.startClassPatcher(secret_key_patcher())
        cls.company = cls.env.company
        Connector = cls.env["ps.hub.connector"]
        cls.hubspot = Connector.create({
            "name": "HubSpot test", "system": "hubspot", "signing_secret": "hubspot-client-secret",
            "auth_type": "bearer", "auth_secret": "pat-test-token", "base_url": "http://127.0.0.1:9",
            "retry_max_attempts": 3, "retry_backoff_base": 10, "retry_backoff_cap": 60,
        })
        cls.salesforce = Connector.create({
            "name": "Salesforce test", "system": "salesforce", "salesforce_org_id": "00D5e000001AbCdEAK",
            "auth_type": "oauth2_client_credentials", "auth_username": "client-id",
            "auth_secret": "client-secret", "base_url": "http://127.0.0.1:9",
        })
        cls.stripe = Connector.create({
            "name": "Stripe test", "system": "stripe", "signing_secret": "whsec_test_stripe_secret",
            "auth_type": "none",
        })
        cls.bamboohr = Connector.create({
            "name": "BambooHR test", "system": "bamboohr", "signing_secret": "bamboo-private-key",
            "auth_type": "basic",
        })
        cls.standard = Connector.create({
            "name": "Standard test", "system": "standard",
            "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "auth_type": "none",
        })
        cls.user_hub = new_test_user(cls.env, "hub_user", groups="ps_integration_hub.group_hub_user")
        cls.user_finance = new_test_user(cls.env, "hub_finance", groups="ps_integration_hub.group_hub_finance")
        cls.user_manager = new_test_user(cls.env, "hub_manager", groups="ps_integration_hub.group_hub_manager")

    @classmethod
    def enqueue(cls, connector, body, headers=None):
        """Store a delivery as the inbound route does, without HTTP."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        delivery = parsers.parse_delivery(connector.system, body, headers or {})
        ids, duplicates = cls.env["ps.hub.event"]._hub_enqueue(connector, delivery, headers or {})
        return cls.env["ps.hub.event"].browse(ids), duplicates

    def process(self):
        """Claim and process what is ready, like one worker pass, without committing."""
        Event = self.env["ps.hub.event"]
        processed = Event.browse()
        while True:
            token = os.urandom(8).hex()
            claimed = Event._hub_claim(100, token)
            if not claimed:
                break
            processed |= Event._hub_process_claimed(token)
        processed.invalidate_recordset()
        return processed


class HubCase(HubCaseMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
