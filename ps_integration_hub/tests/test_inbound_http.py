import json
import time
from datetime import UTC, datetime

import stripe
from standardwebhooks.webhooks import Webhook

from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from ps_hub_fakes import FakeSalesforce, load_fixture

from ..services import signatures as sig
from .common import HubCaseMixin, secret_key_patcher

CONTROLLER_LOGGER = "odoo.addons.ps_integration_hub.models.ps_hub_connector"


@tagged("post_install", "-at_install")
class TestInboundRoute(HubCaseMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()

    def url(self, connector):
        return f"{self.base_url()}/ps_hub/in/{connector.sudo().inbound_token}"

    def post(self, connector, body, headers=None, content_type="application/json"):
        return self.url_open(self.url(connector), data=body, method="POST",
                             headers={"Content-Type": content_type, **(headers or {})}, allow_redirects=False)

    def hubspot_headers(self, body, secret="hubspot-client-secret", ts_ms=None, connector=None):
        ts_ms = ts_ms or int(time.time() * 1000)
        uri = self.url(connector or self.hubspot)
        return {"X-HubSpot-Signature-v3": sig.sign_hubspot_v3(secret, "POST", uri, body, ts_ms),
                "X-HubSpot-Request-Timestamp": str(ts_ms)}

    def events(self, connector):
        return self.env["ps.hub.event"].search([("connector_id", "=", connector.id)])

    def test_hubspot_batch_then_redelivery(self):
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        response = self.post(self.hubspot, body, self.hubspot_headers(body))
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json(), {"accepted": 2, "duplicates": 0})
        events = self.events(self.hubspot)
        self.assertEqual(sorted(events.mapped("idempotency_key")), ["3817561001", "3817561002"])
        self.assertEqual(set(events.mapped("state")), {"pending"})
        self.assertEqual(len(set(events.mapped("correlation_id"))), 1)
        self.assertNotIn("X-HubSpot-Signature-v3", json.dumps(events[0].headers))
        # HubSpot retries the same delivery: acknowledged, nothing stored again
        response = self.post(self.hubspot, body, self.hubspot_headers(body))
        self.assertEqual(response.json(), {"accepted": 0, "duplicates": 2})
        self.assertEqual(len(self.events(self.hubspot)), 2)

    def test_rejections_in_order(self):
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        response = self.url_open("/ps_hub/in/not-a-token", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
        self.assertEqual(response.status_code, 404)
        self.hubspot.active = False
        self.assertEqual(self.post(self.hubspot, body, self.hubspot_headers(body)).status_code, 404)
        self.hubspot.active = True
        self.hubspot.max_body_bytes = 100
        self.assertEqual(self.post(self.hubspot, body, self.hubspot_headers(body)).status_code, 413)
        self.hubspot.max_body_bytes = 1024 * 1024
        big = b"[" + b" " * (1024 * 1024) + b"]"
        self.assertEqual(self.post(self.hubspot, big, self.hubspot_headers(big)).status_code, 413)
        response = self.post(self.hubspot, body, self.hubspot_headers(body), content_type="text/plain")
        self.assertEqual(response.status_code, 415)
        self.assertFalse(self.events(self.hubspot))

    def test_bad_signatures_are_401_counted_and_logged_without_body(self):
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        now_ms = int(time.time() * 1000)
        cases = {
            "forged": self.hubspot_headers(body, secret="guess"),
            "stale": self.hubspot_headers(body, ts_ms=now_ms - 6 * 60 * 1000),
            "future": self.hubspot_headers(body, ts_ms=now_ms + 6 * 60 * 1000),
            "missing": {},
            "tampered": self.hubspot_headers(body.replace(b"closedwon", b"closedlost")),
        }
        for label, headers in cases.items():
            with self.subTest(label), self.assertLogs(CONTROLLER_LOGGER, "WARNING") as logs:
                response = self.post(self.hubspot, body, headers)
                self.assertEqual(response.status_code, 401)
            self.assertNotIn("closedwon", "\n".join(logs.output))
            self.assertNotIn("hubspot-client-secret", "\n".join(logs.output))
        self.hubspot.invalidate_recordset()
        self.assertEqual(self.hubspot.signature_failure_count, len(cases))
        self.assertFalse(self.events(self.hubspot))

    def test_malformed_but_authentic_is_stored_as_exception(self):
        body = b'[{"eventId": 1, "subscriptionType": '
        response = self.post(self.hubspot, body, self.hubspot_headers(body))
        self.assertEqual(response.status_code, 200)
        event = self.events(self.hubspot)
        self.assertEqual((event.state, event.reason, event.payload_raw), ("exception", "malformed", body.decode()))

    def test_salesforce_ack_and_organization(self):
        body = load_fixture("salesforce/outbound_message_opportunity.xml").encode()
        response = self.post(self.salesforce, body, content_type="text/xml; charset=utf-8")
        self.assertEqual(response.status_code, 200)
        self.assertIn(b"<Ack>true</Ack>", response.content)
        self.assertEqual(self.events(self.salesforce).idempotency_key, "04l5e00000CxYz1AAF")
        # the same notification again: acknowledged (or Salesforce retries for 24 h), not stored
        self.assertIn(b"<Ack>true</Ack>", self.post(self.salesforce, body, content_type="text/xml").content)
        self.assertEqual(len(self.events(self.salesforce)), 1)
        forged = FakeSalesforce.outbound_message(
            [{"notification_id": "04l000000000001", "opportunity_id": "0065e00000GhIjKAAV",
              "account_id": "0015e00000QrStUAAV"}], org_id="00D000000000BAD")
        with mute_logger(CONTROLLER_LOGGER):
            self.assertEqual(self.post(self.salesforce, forged, content_type="text/xml").status_code, 401)
        self.assertEqual(len(self.events(self.salesforce)), 1)

    def test_salesforce_batch_of_notifications(self):
        notes = [{"notification_id": f"04l5e00000CxY{i:03d}AAF", "opportunity_id": f"0065e00000GhI{i:03d}AAV",
                  "account_id": "0015e00000QrStUAAV"} for i in range(100)]
        body = FakeSalesforce.outbound_message(notes)
        self.assertEqual(self.post(self.salesforce, body, content_type="text/xml").status_code, 200)
        self.assertEqual(len(self.events(self.salesforce)), 100)

    def test_stripe_signed_by_sdk(self):
        body = load_fixture("stripe/invoice_paid.json").encode()
        now = int(time.time())
        v1 = stripe.WebhookSignature._compute_signature(f"{now}.{body.decode()}", "whsec_test_stripe_secret")
        response = self.post(self.stripe, body, {"Stripe-Signature": f"t={now},v1={v1}"})
        self.assertEqual(response.status_code, 200, response.text)
        event = self.events(self.stripe)
        self.assertEqual((event.event_type, event.external_id), ("invoice.paid", "in_1QxR1zLkdIwHu7ixAbC12345"))
        bad = f"t={now},v1={'0' * 64}"
        with mute_logger(CONTROLLER_LOGGER):
            self.assertEqual(self.post(self.stripe, body, {"Stripe-Signature": bad}).status_code, 401)

    def test_standard_webhooks_with_rotation(self):
        body = json.dumps({"type": "customer.updated", "data": {"id": "c1"}})
        old_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        new_secret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
        self.standard.action_rotate_signing_secret()
        self.standard.signing_secret = new_secret
        now = datetime.now(UTC)
        headers = {"webhook-id": "msg_2", "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(old_secret).sign("msg_2", now, body)}
        self.assertEqual(self.post(self.standard, body.encode(), headers).status_code, 200)
        self.standard.action_clear_previous_secret()
        headers["webhook-id"] = "msg_3"
        headers["webhook-signature"] = Webhook(old_secret).sign("msg_3", now, body)
        with mute_logger(CONTROLLER_LOGGER):
            self.assertEqual(self.post(self.standard, body.encode(), headers).status_code, 401)
        headers["webhook-signature"] = " ".join([Webhook(old_secret).sign("msg_3", now, body),
                                                 Webhook(new_secret).sign("msg_3", now, body)])
        self.assertEqual(self.post(self.standard, body.encode(), headers).status_code, 200)
        self.assertEqual(sorted(self.events(self.standard).mapped("idempotency_key")), ["msg_2", "msg_3"])

    def test_bamboohr(self):
        body = load_fixture("bamboohr/webhook_employee_updated.json").encode()
        now = int(time.time())
        headers = {"X-BambooHR-Signature": sig.sign_bamboohr("bamboo-private-key", body, now),
                   "X-BambooHR-Timestamp": str(now)}
        self.assertEqual(self.post(self.bamboohr, body, headers).status_code, 200)
        self.assertEqual(self.events(self.bamboohr).external_id, "1207")

    def test_unconfigured_key_is_503_not_crash(self):
        body = load_fixture("bamboohr/webhook_employee_updated.json").encode()
        with secret_key_patcher(""), \
                mute_logger("odoo.addons.ps_integration_hub.controllers.main"):
            response = self.post(self.bamboohr, body, {"X-BambooHR-Signature": "0", "X-BambooHR-Timestamp": "1"})
        self.assertEqual(response.status_code, 503)
