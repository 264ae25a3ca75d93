"""Acme CRM webhooks, as Acme's developer documentation describes them.

Acme CRM is fictitious: it stands for any vendor a module adds to the hub. Its webhooks:

- ``POST`` to the endpoint URL, ``Content-Type: application/vnd.acme.webhook+json`` (a
  ``version`` parameter may follow).
- ``X-Acme-Timestamp``: when Acme sent the request, in Unix seconds.
- ``X-Acme-Signature``: ``v1=`` and the lowercase hex HMAC-SHA256 of
  ``<X-Acme-Timestamp>.<raw body>``, keyed with the webhook secret (UTF-8). Receivers
  refuse a timestamp more than five minutes away from their clock.
- The body: ``{"delivery_id": "dlv_...", "workspace_id": "ws_...", "events": [...]}``: the
  Acme workspace (account) the events are from, and up to 50 events, each
  ``{"id": "evt_...", "type": "acme.contact.updated", "created_at": <Unix seconds>,
  "object": {"type": "contact", "id": "c_1042", ...}}``. ``acme.ping`` events (sent when the
  webhook is registered, and by *Send test event*) have no ``object``. An event redelivered
  after a failed attempt keeps its ``id``.

Example: secret ``acme_whsec_5f2d8c1e9b7a4630``, timestamp ``1763632800``, body
``{"delivery_id":"dlv_1","workspace_id":"ws_4f1c","events":[{"id":"evt_1","type":"acme.ping",
"created_at":1763632800}]}`` (one line): ``X-Acme-Signature:
v1=06511cde6b5a2bab17ebefc0878ce6a2ae4e77533f74743f21217c8dc2f970e4``.
"""

import hashlib
import hmac
import json
import re
import time

from odoo.addons.ps_integration_hub.services import parsers
from odoo.addons.ps_integration_hub.services.signatures import TOLERANCE, SignatureError

CONTENT_TYPES = ("application/vnd.acme.webhook+json",)
SIGNATURE_HEADER = "X-Acme-Signature"
TIMESTAMP_HEADER = "X-Acme-Timestamp"
SCHEME = "v1="
_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")  # ASCII digits only, no sign, no 400-digit number


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Acme-Signature value Acme sends for ``body`` at ``timestamp``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return SCHEME + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify(secrets, body: bytes, headers, tolerance: int = TOLERANCE, now: float | None = None) -> None:
    """Raise SignatureError unless one of ``secrets`` signed ``body`` recently.

    Like the hub's verifiers, it raises nothing else whatever the headers hold, and its
    reasons name neither the secret nor the body.
    """
    candidates = [secret for secret in secrets if secret]
    if not candidates:
        raise SignatureError("no signing secret configured on the connector")
    raw_timestamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
    given = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not raw_timestamp or not given:
        raise SignatureError(f"missing header {TIMESTAMP_HEADER if not raw_timestamp else SIGNATURE_HEADER}")
    if not _TIMESTAMP_RE.fullmatch(raw_timestamp):
        raise SignatureError("malformed timestamp")
    timestamp = int(raw_timestamp)
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    # compare_digest refuses non-ASCII text; an expected signature is ASCII, so such a
    # header simply does not match
    if not given.isascii() or not any(
            hmac.compare_digest(sign(secret, timestamp, body), given) for secret in candidates):
        raise SignatureError("signature mismatch")


def _malformed_item(item, error: str) -> parsers.ParsedEvent:
    # storable: the whole body passed load_json; keyed by its digest like any malformed event
    event = parsers.malformed(json.dumps(item, sort_keys=True).encode(), error)
    event.payload = item if isinstance(item, dict) else None
    return event


def _event(item) -> parsers.ParsedEvent:
    if not isinstance(item, dict):
        return _malformed_item(item, "Acme event that is not a JSON object")
    event_id, event_type = parsers.ident(item.get("id")), parsers.event_name(item.get("type"))
    if not event_id or not event_type:
        return _malformed_item(item, "Acme event without id or type")
    obj = item.get("object")
    object_type = object_id = None
    if obj is not None:
        if not isinstance(obj, dict):
            return _malformed_item(item, "Acme event whose object is not a JSON object")
        object_type, object_id = parsers.ident(obj.get("type")), parsers.ident(obj.get("id"))
        if not object_type or not object_id:
            return _malformed_item(item, "Acme event whose object has no usable type or id")
    return parsers.ParsedEvent(
        event_type=event_type,
        idempotency_key=event_id,
        external_id=object_id,
        # the events of one Acme object run in order, whatever its type of event
        ordering_key=f"{object_type}:{object_id}" if object_id else None,
        payload=item,
        occurred_at=parsers.from_seconds(item.get("created_at")),
    )


def parse(body: bytes, headers=None) -> parsers.Delivery:
    """One event per item of ``events``; what cannot be read is a malformed event."""
    data, error = parsers.load_json(body)
    if error:
        return parsers.Delivery([parsers.malformed(body, error)])
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        return parsers.Delivery([parsers.malformed(body, "expected an object with a non-empty events array")])
    workspace = data.get("workspace_id")
    return parsers.Delivery([_event(item) for item in events],
                            organization_id=workspace if isinstance(workspace, str) else None)
