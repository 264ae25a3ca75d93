import json
import os
from contextlib import contextmanager
from unittest.mock import patch

from cryptography.fernet import Fernet

from odoo.tests import TransactionCase, new_test_user

from ps_hub_fakes import FakeHubSpot, FakeSalesforce

TEST_KEY = Fernet.generate_key().decode()


def secret_key_patcher(key=TEST_KEY):
    """The server's encryption key, as odoo.conf would give it (empty: none configured)."""
    from ..models.ps_hub_connector import PsHubConnector  # noqa: PLC0415
    return patch.object(PsHubConnector, "_hub_keys", lambda self: [key] if key else [])


@contextmanager
def patched_handler(env, handler=None, key=("hubspot", "deal.propertyChange"), batch=None):
    """Make the events of ``key`` (system, code) run on every connector through the record-only
    handler, patched to call ``handler(event) -> result`` for each event (in a savepoint of its
    own, as ps.hub.handler.process does) or ``batch(events) -> {event id: result}``.

    The event type is declared for the test if no installed module declares it; a declared
    one (quote-to-cash's deal type) is pointed to the patched handler. Yields the type.
    """
    system, code = key
    EventType = env["ps.hub.event.type"].sudo().with_context(active_test=False)
    values = {"handler_model_id": env["ir.model"]._get_id("ps.hub.handler.record.only"),
              "active": True, "run_on_sandbox": True}
    event_type = EventType.search([("system", "=", system), ("code", "=", code)])
    if event_type:
        event_type.write(values)
    else:
        event_type = EventType.create(dict(values, name=f"Test {code}", system=system, code=code))
    event_type._hub_switch(env["ps.hub.connector"].with_context(active_test=False).search([("system", "=", system)]))
    Model = type(env["ps.hub.handler.record.only"])
    if batch is not None:
        patcher = patch.object(Model, "process", lambda model, events: batch(events))
    else:
        patcher = patch.object(Model, "_process_one", lambda model, event: handler(event))
    with patcher:
        yield event_type


def forget_vendor_health(connectors=None):
    """Forget what this process learned of the connectors' vendors (all of them by default):
    pauses and failure counts kept in memory between the writes of the connector."""
    from ..models import ps_hub_connector  # noqa: PLC0415
    with ps_hub_connector._HEALTH_LOCK:
        for key in list(ps_hub_connector._HEALTH):
            if connectors is None or key[1] in connectors.ids:
                del ps_hub_connector._HEALTH[key]


class HubCaseMixin:
    """Connectors of every system and users of each integration group.

    Each test starts with no vendor health noted in the process's memory (pauses, failure
    counts): a rate limit one test met must not pause the next test's calls.
    """

    def setUp(self):
        super().setUp()
        forget_vendor_health()
        self.addCleanup(forget_vendor_health)

    def end_vendor_pause(self, connector):
        """Play the end of a pause a vendor asked for (its window passed): calls may go again."""
        connector.sudo().paused_until = False
        from ..models import ps_hub_connector  # noqa: PLC0415
        with ps_hub_connector._HEALTH_LOCK:
            health = ps_hub_connector._HEALTH.get((self.env.cr.dbname, connector.id))
            if health:
                health.pause_until = 0.0

    @classmethod
    def start_fake_vendors(cls):
        """Fake HubSpot and Salesforce servers for the class, the test connectors calling them
        (setup_hub first)."""
        cls.fake_hubspot = FakeHubSpot(token="pat-test-token").start()
        cls.addClassCleanup(cls.fake_hubspot.stop)
        cls.fake_salesforce = FakeSalesforce(client_id="client-id", client_secret="client-secret").start()
        cls.addClassCleanup(cls.fake_salesforce.stop)
        cls.hubspot.base_url = cls.fake_hubspot.base_url
        cls.salesforce.base_url = cls.fake_salesforce.base_url

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
        delivery = connector._hub_parse_delivery(body, headers or {})
        ids, duplicates = cls.env["ps.hub.event"]._hub_enqueue(connector, delivery, headers or {})
        return cls.env["ps.hub.event"].browse(ids), duplicates

    def process(self, batch_size=100):
        """Claim and process what is ready, like one worker pass, without committing."""
        Engine = self.env["ps.hub.engine"]
        processed = self.env["ps.hub.event"].browse()
        while True:
            token = os.urandom(8).hex()
            claimed = Engine._hub_claim(batch_size, token)
            if not claimed:
                break
            processed |= Engine._hub_process_claimed(token)
        processed.invalidate_recordset()
        return processed


class HubCase(HubCaseMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
