"""Sign deliveries as the vendors do, with the vendors' own packages where they exist.

The tests, the demo and the benchmarks sign what they send here, never with the
product's signer (``ps_integration_hub.services.signatures``), so that a mistake in the
product's scheme cannot be hidden by the same mistake on the sending side:

- HubSpot v3: ``hubspot-api-client`` (``hubspot.utils.signature.Signature``), over the
  URL HubSpot would sign (the public URL of the webhook, as the app settings give it);
- Stripe: ``stripe.WebhookSignature.generate_signature_header``;
- Standard Webhooks: ``standardwebhooks.Webhook.sign``;
- BambooHR has no package: its documented scheme is written out here, apart from the
  product's, and checked against a fixed vector in the tests.

Bodies that are not UTF-8 (fuzzing sends random bytes) cannot go through the packages,
which sign text: they are signed by the same documented HMAC over the raw bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def hubspot_headers(secret: str, url: str, body: bytes, timestamp_ms: int | None = None,
                    method: str = "POST") -> dict[str, str]:
    """X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp for a delivery to ``url``."""
    from hubspot.utils.signature import Signature  # noqa: PLC0415 - only the tests need it

    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    text = _text(body)
    if text is not None:
        signature = Signature.get_signature(secret, text, "v3", http_uri=url, http_method=method,
                                            timestamp=str(timestamp_ms))
    else:
        msg = f"{method}{url}".encode() + body + str(timestamp_ms).encode()
        signature = base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(timestamp_ms)}


def stripe_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Stripe-Signature (``t=...,v1=...``)."""
    import stripe  # noqa: PLC0415

    timestamp = int(time.time()) if timestamp is None else timestamp
    text = _text(body)
    if text is not None:
        header = stripe.WebhookSignature.generate_signature_header(text, secret, timestamp=timestamp)
    else:
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        header = f"t={timestamp},v1={digest}"
    return {"Stripe-Signature": header}


def standard_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature of the Standard Webhooks spec."""
    from standardwebhooks import Webhook  # noqa: PLC0415

    timestamp = int(time.time()) if timestamp is None else timestamp
    text = _text(body)
    if text is not None:
        signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), text)
    else:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def bamboohr_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """X-BambooHR-Signature = hex(HMAC-SHA256(private key, body + timestamp)), and the timestamp."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), body + str(timestamp).encode(), hashlib.sha256).hexdigest()
    return {"X-BambooHR-Signature": digest, "X-BambooHR-Timestamp": str(timestamp)}
