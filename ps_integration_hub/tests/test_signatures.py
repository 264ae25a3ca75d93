"""Our signature schemes against the vendors' own packages and published vectors."""

import json
import time
from datetime import UTC, datetime

import stripe
from freezegun import freeze_time
from hubspot.utils.signature import Signature
from standardwebhooks.webhooks import Webhook

from odoo.tests import BaseCase, tagged

from ps_hub_fakes import load_json
from ps_hub_fakes.signing import bamboohr_headers, hubspot_headers

from ..services import signatures as sig

BODY = b'[{"eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 42}]'

# BambooHR documents X-BambooHR-Signature as hex(HMAC-SHA256(private key, body + timestamp))
# with the timestamp in X-BambooHR-Timestamp. Worked out once by hand from these inputs
# (`printf '%s' "<body>1700000000" | openssl dgst -sha256 -hmac bamboo-private-key`),
# apart from both the product's signer and ps_hub_fakes.signing.
BAMBOO_VECTOR = {
    "secret": "bamboo-private-key",
    "body": b'{"type": "employee.updated", "data": {"employeeId": "1207"}}',
    "timestamp": 1700000000,
    "signature": "50f71d7cd497a25436c8f97f00cdae1304c7578d6fd1549df1caf8f4ea612095",
}


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

    def test_bamboohr_fixed_vector_and_stale_timestamp(self):
        v = BAMBOO_VECTOR
        headers = {"X-BambooHR-Signature": v["signature"], "X-BambooHR-Timestamp": str(v["timestamp"])}
        self.assertEqual(sig.sign_bamboohr(v["secret"], v["body"], v["timestamp"]), v["signature"])
        self.assertEqual(bamboohr_headers(v["secret"], v["body"], v["timestamp"]), headers)
        upper = dict(headers, **{"X-BambooHR-Signature": v["signature"].upper()})
        with freeze_time(datetime.fromtimestamp(v["timestamp"] + 299, UTC)):
            sig.verify_bamboohr([v["secret"]], v["body"], headers)
            sig.verify_bamboohr([v["secret"]], v["body"], upper)  # hex in either case
            with self.assertRaisesRegex(sig.SignatureError, "mismatch"):
                sig.verify_bamboohr([v["secret"]], v["body"] + b" ", headers)
        with freeze_time(datetime.fromtimestamp(v["timestamp"] + 301, UTC)), \
                self.assertRaisesRegex(sig.SignatureError, "too old"):
            sig.verify_bamboohr([v["secret"]], v["body"], headers)
        with freeze_time(datetime.fromtimestamp(v["timestamp"] - 301, UTC)), \
                self.assertRaisesRegex(sig.SignatureError, "future"):
            sig.verify_bamboohr([v["secret"]], v["body"], headers)

    def test_hostile_headers_raise_only_signature_error(self):
        """Non-ASCII signatures and absurd timestamps are a 401, not a TypeError/OverflowError."""
        now = int(time.time())
        huge = "9" * 400
        std_sig = sig.sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m1", now, BODY)
        cases = {
            "stripe non-ascii": lambda: sig.verify_stripe(
                ["whsec_abc"], BODY, {"Stripe-Signature": f"t={now},v1=\u00e9\u00e9"}),
            "stripe 400 digits": lambda: sig.verify_stripe(
                ["whsec_abc"], BODY, {"Stripe-Signature": f"t={huge},v1=00"}),
            "standard non-ascii": lambda: sig.verify_standard(
                ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], BODY,
                {"webhook-id": "m1", "webhook-timestamp": str(now), "webhook-signature": "v1,\u00ff\u00fe"}),
            "standard 400 digits": lambda: sig.verify_standard(
                ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], BODY,
                {"webhook-id": "m1", "webhook-timestamp": huge, "webhook-signature": std_sig}),
            "bamboohr non-ascii": lambda: sig.verify_bamboohr(
                ["key"], BODY, {"X-BambooHR-Signature": "\u00c9" * 64, "X-BambooHR-Timestamp": str(now)}),
            "bamboohr 400 digits": lambda: sig.verify_bamboohr(
                ["key"], BODY, {"X-BambooHR-Signature": "00", "X-BambooHR-Timestamp": huge}),
            "hubspot non-ascii": lambda: sig.verify_hubspot_v3(
                ["secret"], "POST", "https://x/y", BODY,
                {"X-HubSpot-Signature-v3": "\u00e9", "X-HubSpot-Request-Timestamp": str(now * 1000)}),
            "hubspot 400 digits": lambda: sig.verify_hubspot_v3(
                ["secret"], "POST", "https://x/y", BODY,
                {"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": huge}),
            # int() would accept these; a vendor never sends them
            "underscored timestamp": lambda: sig.verify_bamboohr(
                ["key"], BODY, {"X-BambooHR-Signature": "00", "X-BambooHR-Timestamp": f"{now:_}"}),
            "arabic-indic digits": lambda: sig.verify_bamboohr(
                ["key"], BODY, {"X-BambooHR-Signature": "00", "X-BambooHR-Timestamp": "\u0661\u0662"}),
        }
        for label, call in cases.items():
            with self.subTest(label), self.assertRaises(sig.SignatureError):
                call()

    def test_hubspot_v3_any_of_several_urls(self):
        body = BODY.decode()
        public = "https://public.example/ps_hub/in/tok"
        headers = hubspot_headers("secret", public, BODY)
        sig.verify_hubspot_v3(["secret"], "POST", ["http://10.0.0.5:8069/ps_hub/in/tok", public], BODY, headers)
        with self.assertRaisesRegex(sig.SignatureError, "mismatch"):
            sig.verify_hubspot_v3(["secret"], "POST", ["https://other.example/ps_hub/in/tok"], BODY, headers)
        self.assertTrue(Signature.is_valid(headers["X-HubSpot-Signature-v3"], "secret", body, public, "POST",
                                           "v3", headers["X-HubSpot-Request-Timestamp"]))

    def test_hubspot_v3_later_urls_computed_only_when_needed(self):
        public = "https://public.example/ps_hub/in/tok"
        headers = hubspot_headers("secret", public, BODY)
        built = []

        def urls(*candidates):
            for url in candidates:
                built.append(url)
                yield url

        # the public URL matches: the reconstructed one is never built (werkzeug's IRI work)
        sig.verify_hubspot_v3(["old", "secret"], "POST", urls(public, "http://10.0.0.5/ps_hub/in/tok"), BODY, headers)
        self.assertEqual(built, [public])
        built.clear()
        # it does not: the next one is tried, with every secret
        sig.verify_hubspot_v3(["old", "secret"], "POST", urls("http://10.0.0.5/ps_hub/in/tok", public, public),
                              BODY, headers)
        self.assertEqual(built, ["http://10.0.0.5/ps_hub/in/tok", public])
