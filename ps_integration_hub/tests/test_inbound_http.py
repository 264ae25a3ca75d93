import hashlib
import http.client
import json
import random
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import stripe
from standardwebhooks.webhooks import Webhook

from odoo.tests import HttpCase, tagged
from odoo.tests.common import TEST_CURSOR_COOKIE_NAME
from odoo.tools import mute_logger

from ps_hub_fakes import FakeSalesforce, load_fixture
from ps_hub_fakes.signing import bamboohr_headers, hubspot_headers, standard_headers, stripe_headers

from ..services import parsers
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

    def hubspot_headers(self, body, secret="hubspot-client-secret", ts_ms=None, connector=None, url=None):
        """Signed by HubSpot's SDK over the URL HubSpot was given: the connector's inbound URL
        (web.base.url here, http://localhost:<port>), not the one the test posts to."""
        return hubspot_headers(secret, url or (connector or self.hubspot).inbound_url, body, ts_ms)

    def events(self, connector):
        return self.env["ps.hub.event"].search([("connector_id", "=", connector.id)])

    def test_hubspot_batch_then_redelivery(self):
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        response = self.post(self.hubspot, body, self.hubspot_headers(body))
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json(), {"accepted": 2, "duplicates": 0})
        events = self.events(self.hubspot)
        self.assertEqual(sorted(events.mapped("idempotency_key")), ["8765432:3817561001", "8765432:3817561002"])
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

    def test_signed_hostile_bodies_are_acknowledged_and_kept(self):
        """Authentic deliveries that got a 500 (and were lost) are acknowledged and kept,
        losslessly, as malformed exceptions; a redelivery of one is a duplicate."""
        rng = random.Random(6)
        noise = bytes(rng.randrange(256) for _ in range(300)) + b"\x00\xff\x00"
        event = {"eventId": 77, "portalId": 8765432, "subscriptionType": "deal.propertyChange",
                 "objectId": 19077001, "occurredAt": 1763632800000}
        cases = [
            (self.hubspot, noise, "malformed"),
            (self.hubspot, b"[" * 100_000 + b"]" * 100_000, "malformed"),
            (self.hubspot, json.dumps([dict(event, subscriptionType=42)]).encode(), "malformed"),
            (self.hubspot, json.dumps([dict(event, eventId=78, note=float("nan"))]).encode(), "malformed"),
            (self.hubspot, json.dumps([dict(event, eventId=79, note="a\x00b")]).encode(), "malformed"),
            (self.hubspot, json.dumps([dict(event, eventId=80, note="\ud800")]).encode(), "malformed"),
            (self.hubspot, json.dumps([dict(event, eventId="9" * 3000)]).encode(), "malformed"),
            (self.hubspot, json.dumps([dict(event, eventId=81, occurredAt=1e20)]).encode(), "deal.propertyChange"),
            (self.stripe, b'{"id": "evt_list", "type": "invoice.paid", "data": [1, 2]}', "malformed"),
            (self.stripe, b'{"id": "evt_nul", "type": "invoice.paid", "data": {"object": {"n": "\\u0000"}}}',
             "malformed"),
            (self.bamboohr, noise, "malformed"),
            (self.standard, noise, "malformed"),
        ]
        for connector, body, expected_type in cases:
            with self.subTest(system=connector.system, body=body[:40]):
                before = self.events(connector)
                response = self.post(connector, body, self.signed(connector, body))
                self.assertEqual(response.status_code, 200, response.text)
                self.assertEqual(response.json(), {"accepted": 1, "duplicates": 0})
                stored = self.events(connector) - before
                self.assertEqual(stored.event_type, expected_type)
                if expected_type == "malformed":
                    self.assertEqual((stored.state, stored.reason), ("exception", "malformed"))
                    if connector.system != "hubspot" or body is noise or body.startswith(b"[["):
                        self.assertEqual(parsers.raw_bytes(stored.payload_raw), body, "kept losslessly")
                    self.assertTrue(stored.payload_pretty, "the desk can show it")
                else:
                    self.assertEqual((stored.state, stored.occurred_at), ("pending", False))
                again = self.post(connector, body, self.signed(connector, body))
                self.assertEqual(again.json(), {"accepted": 0, "duplicates": 1}, "still idempotent")

    def signed(self, connector, body, msg_id=None):
        if connector.system == "hubspot":
            return self.hubspot_headers(body)
        if connector.system == "stripe":
            return stripe_headers("whsec_test_stripe_secret", body)
        if connector.system == "bamboohr":
            return bamboohr_headers("bamboo-private-key", body)
        msg_id = msg_id or "msg_" + hashlib.sha256(body).hexdigest()[:20]
        return standard_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", msg_id, body)

    def test_hostile_signature_headers_are_401(self):
        """Non-ASCII signatures and a 400-digit timestamp raised (500) instead of a 401."""
        body = b'{"id": "evt_1", "type": "invoice.paid"}'
        now, huge = str(int(time.time())), "9" * 400
        std = standard_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", body)
        cases = [
            (self.stripe, {"Stripe-Signature": f"t={now},v1=" + "\u00e9" * 64}),
            (self.stripe, {"Stripe-Signature": f"t={huge},v1=" + "0" * 64}),
            (self.standard, dict(std, **{"webhook-signature": "v1,\u00e9\u00e8=="})),
            (self.standard, dict(std, **{"webhook-timestamp": huge})),
            (self.bamboohr, {"X-BambooHR-Signature": "\u00e9" * 64, "X-BambooHR-Timestamp": now}),
            (self.bamboohr, {"X-BambooHR-Signature": "0" * 64, "X-BambooHR-Timestamp": huge}),
            (self.hubspot, dict(self.hubspot_headers(body), **{"X-HubSpot-Signature-v3": "\u00e9"})),
            (self.hubspot, dict(self.hubspot_headers(body), **{"X-HubSpot-Request-Timestamp": huge})),
        ]
        for connector, headers in cases:
            with self.subTest(system=connector.system, headers=headers), mute_logger(CONTROLLER_LOGGER):
                response = self.post(connector, body, headers)
                self.assertEqual(response.status_code, 401, response.text)
        for connector in (self.stripe, self.standard, self.bamboohr, self.hubspot):
            self.assertFalse(self.events(connector))

    def test_rejection_order_when_several_checks_fail(self):
        """404 > 411/413 > 415 > 401, as the README says: a request failing several checks
        gets the first, and the later checks (the signature's counter) never run."""
        body = b"[" + b" " * 300 + b"]"
        forged = self.hubspot_headers(body, secret="guess", ts_ms=1)  # wrong secret and stale
        self.hubspot.max_body_bytes = 100
        unknown = self.url_open("/ps_hub/in/not-a-token", data=body, method="POST",
                                headers={"Content-Type": "text/plain", **forged})
        self.assertEqual(unknown.status_code, 404)
        self.assertEqual(self.raw_post(self.hubspot, b"x", "text/plain", forged, chunked=True)[0], 411)
        self.assertEqual(self.post(self.hubspot, body, forged, content_type="text/plain").status_code, 413)
        self.hubspot.max_body_bytes = 1000
        self.assertEqual(self.post(self.hubspot, body, forged, content_type="text/plain").status_code, 415)
        self.assertEqual(self.post(self.hubspot, body, forged, content_type="").status_code, 415)
        self.hubspot.invalidate_recordset()
        self.assertEqual(self.hubspot.signature_failure_count, 0, "no signature was checked yet")
        with mute_logger(CONTROLLER_LOGGER):
            self.assertEqual(self.post(self.hubspot, body, forged).status_code, 401)
        self.hubspot.active = False
        self.assertEqual(self.raw_post(self.hubspot, b"x", "text/plain", forged, chunked=True)[0], 404)
        self.assertEqual(self.post(self.hubspot, b"x" * 2000, forged, content_type="text/plain").status_code, 404)
        self.hubspot.active = True
        # Salesforce: size and type come before the organization check
        foreign = FakeSalesforce.outbound_message(
            [{"notification_id": "04l000000000009", "opportunity_id": "0065e00000GhIjKAAV",
              "account_id": "0015e00000QrStUAAV"}], org_id="00D000000000BAD")
        self.salesforce.max_body_bytes = 100
        self.assertEqual(self.post(self.salesforce, foreign, content_type="application/json").status_code, 413)
        self.salesforce.max_body_bytes = 1024 * 1024
        self.assertEqual(self.post(self.salesforce, foreign, content_type="application/json").status_code, 415)
        self.hubspot.invalidate_recordset()
        self.salesforce.invalidate_recordset()
        self.assertEqual(self.hubspot.signature_failure_count, 1)
        self.assertEqual(self.salesforce.signature_failure_count, 0)
        self.assertFalse(self.events(self.hubspot) | self.events(self.salesforce))

    def raw_post(self, connector, body, content_type, headers, chunked=False):
        """POST without Content-Length (http.client adds none when told so)."""
        base = urlsplit(self.base_url())
        self.env.cr.flush()  # what the test opener does before each request
        self.env.cr.clear()
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
        with self.allow_requests():
            try:
                conn.putrequest("POST", f"/ps_hub/in/{connector.sudo().inbound_token}", skip_accept_encoding=True)
                conn.putheader("Content-Type", content_type)
                # the test server serves only requests carrying this test's cookie
                conn.putheader("Cookie", f"{TEST_CURSOR_COOKIE_NAME}={self.opener.cookies[TEST_CURSOR_COOKIE_NAME]}")
                for name, value in headers.items():
                    conn.putheader(name, value)
                if chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                if chunked:
                    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

    def test_no_content_length_is_411(self):
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        for chunked in (True, False):
            with self.subTest(chunked=chunked):
                status, answer = self.raw_post(self.hubspot, body if chunked else b"", "application/json",
                                               self.hubspot_headers(body), chunked=chunked)
                self.assertEqual(status, 411, answer)
        self.assertFalse(self.events(self.hubspot))

    def test_hubspot_behind_tls_terminating_proxy(self):
        """HubSpot signs https://public.example/...; Odoo receives plain HTTP on another host
        (no X-Forwarded-Host, proxy_mode off): verified against the connector's public URL."""
        token = self.hubspot.sudo().inbound_token
        self.hubspot.public_base_url = "https://public.example/"
        public = f"https://public.example/ps_hub/in/{token}"
        self.assertEqual(self.hubspot.inbound_url, public, "the URL to paste into HubSpot")
        body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
        response = self.post(self.hubspot, body, hubspot_headers("hubspot-client-secret", public, body))
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(len(self.events(self.hubspot)), 2)
        # the query string as received is part of what HubSpot signs, with its escapes decoded
        body2 = body.replace(b"3817561001", b"3817561011").replace(b"3817561002", b"3817561012")
        signed_url = f"{public}?source=hubspot&x=a:b"
        response = self.url_open(f"{self.url(self.hubspot)}?source=hubspot&x=a%3Ab", data=body2, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **hubspot_headers("hubspot-client-secret", signed_url, body2)})
        self.assertEqual(response.status_code, 200, response.text)
        body3 = body.replace(b"3817561001", b"3817561021").replace(b"3817561002", b"3817561022")
        for other in (f"https://other.example/ps_hub/in/{token}", f"http://public.example/ps_hub/in/{token}",
                      f"https://public.example/ps_hub/in/{token}?x=1"):
            with self.subTest(other), mute_logger(CONTROLLER_LOGGER):
                response = self.post(self.hubspot, body3, hubspot_headers("hubspot-client-secret", other, body3))
                self.assertEqual(response.status_code, 401)
        self.assertEqual(len(self.events(self.hubspot)), 4)
        # without a public base URL on the connector: web.base.url
        self.hubspot.public_base_url = False
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", "https://erp.example")
        self.assertEqual(self.hubspot.inbound_url, f"https://erp.example/ps_hub/in/{token}")
        response = self.post(self.hubspot, body3, hubspot_headers("hubspot-client-secret",
                                                                  self.hubspot.inbound_url, body3))
        self.assertEqual(response.status_code, 200, response.text)

    def test_hubspot_events_of_other_portals_are_dropped(self):
        """An app delivers every installing portal (sandboxes too) to one URL. Events of
        another portal than the connector's are authentic, so refusing the delivery would
        only make HubSpot retry it for a day and hold back this portal's events in the same
        batch: they are dropped, logged and counted, the rest is accepted (200)."""
        def ev(event_id, portal):
            return {"eventId": event_id, "portalId": portal, "subscriptionType": "deal.propertyChange",
                    "objectId": 19077001, "propertyName": "dealstage", "propertyValue": "closedwon"}
        # no portal configured: the check is off, and eventId alone is not the key
        body = json.dumps([ev(1, 8765432), ev(1, 555)]).encode()
        self.assertEqual(self.post(self.hubspot, body, self.hubspot_headers(body)).json(),
                         {"accepted": 2, "duplicates": 0})
        self.assertEqual(sorted(self.events(self.hubspot).mapped("idempotency_key")), ["555:1", "8765432:1"])
        self.hubspot.hubspot_portal_id = "8765432"
        body = json.dumps([ev(2, 8765432), ev(2, 555), ev(3, 8765432), ev(3, 556)]).encode()
        with self.assertLogs(CONTROLLER_LOGGER, "WARNING") as logs:
            response = self.post(self.hubspot, body, self.hubspot_headers(body))
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json(), {"accepted": 2, "duplicates": 0, "other_portal": 2})
        self.assertIn("555, 556", "\n".join(logs.output))
        body = json.dumps([ev(4, 555)]).encode()
        with mute_logger(CONTROLLER_LOGGER):
            response = self.post(self.hubspot, body, self.hubspot_headers(body))
        self.assertEqual(response.json(), {"accepted": 0, "duplicates": 0, "other_portal": 1})
        self.assertEqual(sorted(self.events(self.hubspot).mapped("idempotency_key")),
                         ["555:1", "8765432:1", "8765432:2", "8765432:3"])
        self.hubspot.invalidate_recordset()
        self.assertEqual(self.hubspot.foreign_portal_event_count, 3)
        self.assertEqual(self.hubspot.signature_failure_count, 0)

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
        self.assertEqual(self.post(self.bamboohr, body, bamboohr_headers("bamboo-private-key", body)).status_code, 200)
        self.assertEqual(self.events(self.bamboohr).external_id, "1207")

    def test_unconfigured_key_is_503_not_crash(self):
        body = load_fixture("bamboohr/webhook_employee_updated.json").encode()
        with secret_key_patcher(""), \
                mute_logger("odoo.addons.ps_integration_hub.controllers.main"):
            response = self.post(self.bamboohr, body, {"X-BambooHR-Signature": "0", "X-BambooHR-Timestamp": "1"})
        self.assertEqual(response.status_code, 503)
