"""Our signature schemes against the vendors' own packages and published vectors."""

import json
import time
from datetime import UTC, datetime

import stripe
from hubspot.utils.signature import Signature
from standardwebhooks.webhooks import Webhook

from odoo.tests import BaseCase, tagged

from ps_hub_fakes import load_json

from ..services import signatures as sig

BODY = b'[{"eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 42}]'


@tagged("post_install", "-at_install")
class TestSignatures(BaseCase):
    def test_hubspot_v3_matches_sdk(self):
        now_ms = int(time.time() * 1000)
        uri = "https://odoo.example/ps_hub/in/tok?portal=1&x=a%3Ab%2Fc%40d%21%24%27%28%29%2A%2C%3B"
        ours = sig.sign_hubspot_v3("secret", "POST", uri, BODY, now_ms)
        # the SDK signs the URI as given: HubSpot decodes the escapes before signing
        self.assertTrue(Signature.is_valid(ours, "secret", BODY.decode(), sig.hubspot_uri(uri),
                                           "POST", "v3", str(now_ms)))
        self.assertEqual(sig.hubspot_uri(uri),
                         "https://odoo.example/ps_hub/in/tok?portal=1&x=a:b/c@d!$'()*,;")
        headers = {"X-HubSpot-Signature-v3": ours, "X-HubSpot-Request-Timestamp": str(now_ms)}
        sig.verify_hubspot_v3(["secret"], "POST", uri, BODY, headers)
        sdk = Signature.get_signature("secret", BODY.decode(), "v3", sig.hubspot_uri(uri), "POST", str(now_ms))
        sig.verify_hubspot_v3(["secret"], "POST", uri, BODY, dict(headers, **{"X-HubSpot-Signature-v3": sdk}))

    def test_hubspot_v3_rejections(self):
        now_ms = int(time.time() * 1000)
        uri = "https://odoo.example/ps_hub/in/tok"
        good = {"X-HubSpot-Signature-v3": sig.sign_hubspot_v3("secret", "POST", uri, BODY, now_ms),
                "X-HubSpot-Request-Timestamp": str(now_ms)}
        cases = {
            "wrong secret": (["other"], BODY, good),
            "tampered body": (["secret"], BODY + b" ", good),
            "missing signature": (["secret"], BODY, {"X-HubSpot-Request-Timestamp": str(now_ms)}),
        }
        for label, (secrets, body, headers) in cases.items():
            with self.subTest(label), self.assertRaises(sig.SignatureError):
                sig.verify_hubspot_v3(secrets, "POST", uri, body, headers)
        for label, ts in (("stale", now_ms - 301_000), ("future", now_ms + 301_000)):
            headers = {"X-HubSpot-Signature-v3": sig.sign_hubspot_v3("secret", "POST", uri, BODY, ts),
                       "X-HubSpot-Request-Timestamp": str(ts)}
            with self.subTest(label), self.assertRaisesRegex(sig.SignatureError, "timestamp"):
                sig.verify_hubspot_v3(["secret"], "POST", uri, BODY, headers)

    def test_stripe_matches_sdk(self):
        now = int(time.time())
        header = stripe.WebhookSignature._compute_signature(f"{now}.{BODY.decode()}", "whsec_abc")
        sig.verify_stripe(["whsec_abc"], BODY, {"Stripe-Signature": f"t={now},v1={header}"})
        ours = sig.sign_stripe("whsec_abc", BODY, now)
        self.assertTrue(stripe.WebhookSignature.verify_header(BODY.decode(), ours, "whsec_abc", 300))
        with self.assertRaises(sig.SignatureError):
            sig.verify_stripe(["whsec_other"], BODY, {"Stripe-Signature": ours})
        stale = sig.sign_stripe("whsec_abc", BODY, now - 301)
        with self.assertRaisesRegex(sig.SignatureError, "too old"):
            sig.verify_stripe(["whsec_abc"], BODY, {"Stripe-Signature": stale})

    def test_standard_webhooks_published_vector(self):
        vector = load_json("standard_webhooks/published_vector.json")
        body = vector["body"].encode()
        self.assertEqual(sig.sign_standard(vector["secret"], vector["msg_id"], vector["timestamp"], body),
                         vector["expected_signature"])
        headers = {"webhook-id": vector["msg_id"], "webhook-timestamp": str(vector["timestamp"]),
                   "webhook-signature": f"v1,bm90IGl0 {vector['expected_signature']}"}
        sig.verify_standard([vector["secret"]], body, headers, now=vector["timestamp"])
        with self.assertRaisesRegex(sig.SignatureError, "too old"):
            sig.verify_standard([vector["secret"]], body, headers)  # the vector is from 2021

    def test_standard_webhooks_matches_sdk_and_rotation(self):
        old, new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
        now = datetime.now(UTC)
        body = json.dumps({"type": "invoice.paid", "data": {"id": "x1"}})
        signed_by_old = Webhook(old).sign("msg_1", now, body)
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signed_by_old}
        sig.verify_standard([new, old], body.encode(), headers)  # the previous secret still works
        with self.assertRaises(sig.SignatureError):
            sig.verify_standard([new], body.encode(), headers)
        ours = sig.sign_standard(new, "msg_1", int(now.timestamp()), body.encode())
        Webhook(new).verify(body, dict(headers, **{"webhook-signature": ours}))

    def test_bamboohr(self):
        now = int(time.time())
        body = json.dumps(load_json("bamboohr/webhook_employee_updated.json")).encode()
        headers = {"X-BambooHR-Signature": sig.sign_bamboohr("key", body, now), "X-BambooHR-Timestamp": str(now)}
        sig.verify_bamboohr(["key"], body, headers)
        with self.assertRaises(sig.SignatureError):
            sig.verify_bamboohr(["key"], body + b"x", headers)
        with self.assertRaisesRegex(sig.SignatureError, "no signing secret"):
            sig.verify_bamboohr([None, ""], body, headers)
