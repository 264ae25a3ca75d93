"""Inbound signature schemes of the vendors, verified on the raw body.

Each ``verify_*`` takes the candidate secrets (current first, then the previous one
during a rotation), the request as received and the current time, and returns
nothing or raises :class:`SignatureError` with a reason fit for a log line (never the
secret, never the body). Whatever the headers hold (non-ASCII, a 400-digit
timestamp), a ``verify_*`` raises nothing else: a bad request is a 401, never a 500.
Each ``sign_*`` produces what the vendor would send; the tests cross-check them
against the vendors' own packages (test deliveries are signed with those packages,
see ``ps_hub_fakes.signing``).
"""

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping

TOLERANCE = 300  # seconds, every vendor's default

# HubSpot decodes these escapes in the URI before it signs it
# (developers.hubspot.com, "Validating requests", signature v3).
_HUBSPOT_DECODE = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}
_HUBSPOT_RE = re.compile("|".join(_HUBSPOT_DECODE), re.IGNORECASE)


class SignatureError(Exception):
    """The request is not authentic (or not fresh)."""


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise SignatureError(f"missing header {name}")
    return value.strip()


# int() alone would take "+1_700_000_000", Arabic-Indic digits or 400 digits (which then
# overflow a float): a timestamp is 1 to 15 ASCII digits (milliseconds until year 33658).
_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")


def _timestamp(raw: str) -> int:
    if not _TIMESTAMP_RE.fullmatch(raw):
        raise SignatureError("malformed timestamp")
    return int(raw)


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison that takes any header text.

    hmac.compare_digest raises TypeError on non-ASCII str; an expected signature is
    always ASCII, so a non-ASCII candidate simply does not match.
    """
    return given.isascii() and hmac.compare_digest(expected, given)


def _check_fresh(timestamp: float, now: float, tolerance: int) -> None:
    if timestamp < now - tolerance:
        raise SignatureError("timestamp too old")
    if timestamp > now + tolerance:
        raise SignatureError("timestamp in the future")


def _secrets(secrets: Iterable[str | None]) -> list[str]:
    found = [s for s in secrets if s]
    if not found:
        raise SignatureError("no signing secret configured on the connector")
    return found


# HubSpot v3 ------------------------------------------------------------------------

def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it."""
    return _HUBSPOT_RE.sub(lambda m: _HUBSPOT_DECODE[m.group(0).upper()], uri)


def sign_hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """Value of X-HubSpot-Signature-v3."""
    msg = f"{method.upper()}{hubspot_uri(uri)}".encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(_hmac(secret.encode(), msg)).decode()


def verify_hubspot_v3(
    secrets: Iterable[str | None], method: str, uri: str | Iterable[str], body: bytes,
    headers: Mapping[str, str], now: float | None = None, tolerance: int = TOLERANCE,
) -> None:
    """Check X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp (milliseconds).

    ``uri`` is the URL HubSpot was given, or several candidates (the public URL of the
    webhook, the one the server reconstructed): any of them may match. Candidates are taken
    one by one, so that a generator computes the later ones only when the earlier fail.
    """
    signature = _header(headers, "X-HubSpot-Signature-v3")
    raw_ts = _header(headers, "X-HubSpot-Request-Timestamp")
    timestamp_ms = _timestamp(raw_ts)
    _check_fresh(timestamp_ms / 1000, time.time() if now is None else now, tolerance)
    keys = _secrets(secrets)
    tried = set()
    for candidate in [uri] if isinstance(uri, str) else uri:
        if candidate in tried:
            continue
        tried.add(candidate)
        for secret in keys:
            if _same(sign_hubspot_v3(secret, method, candidate, body, timestamp_ms), signature):
                return
    raise SignatureError("signature mismatch")


# Stripe ----------------------------------------------------------------------------

def sign_stripe(secret: str, body: bytes, timestamp: int) -> str:
    """Value of Stripe-Signature."""
    digest = _hmac(secret.encode(), f"{timestamp}.".encode() + body).hex()
    return f"t={timestamp},v1={digest}"


def verify_stripe(
    secrets: Iterable[str | None], body: bytes, headers: Mapping[str, str],
    now: float | None = None, tolerance: int = TOLERANCE,
) -> None:
    """Check Stripe-Signature: ``t=<unix>,v1=<hex>[,v1=<hex>...]``."""
    header = _header(headers, "Stripe-Signature")
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if not timestamp or not candidates:
        raise SignatureError("malformed Stripe-Signature header")
    ts = _timestamp(timestamp)
    _check_fresh(ts, time.time() if now is None else now, tolerance)
    for secret in _secrets(secrets):
        expected = _hmac(secret.encode(), f"{ts}.".encode() + body).hex()
        if any(_same(expected, c) for c in candidates):
            return
    raise SignatureError("signature mismatch")


# BambooHR --------------------------------------------------------------------------

def sign_bamboohr(secret: str, body: bytes, timestamp: int) -> str:
    """Value of X-BambooHR-Signature (timestamp goes in X-BambooHR-Timestamp)."""
    return _hmac(secret.encode(), body + str(timestamp).encode()).hex()


def verify_bamboohr(
    secrets: Iterable[str | None], body: bytes, headers: Mapping[str, str],
    now: float | None = None, tolerance: int = TOLERANCE,
) -> None:
    """Check X-BambooHR-Signature over body + X-BambooHR-Timestamp."""
    signature = _header(headers, "X-BambooHR-Signature").lower()
    raw_ts = _header(headers, "X-BambooHR-Timestamp")
    ts = _timestamp(raw_ts)
    _check_fresh(ts, time.time() if now is None else now, tolerance)
    for secret in _secrets(secrets):
        if _same(sign_bamboohr(secret, body, ts), signature):
            return
    raise SignatureError("signature mismatch")


# Standard Webhooks -----------------------------------------------------------------

def _standard_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    try:
        return base64.b64decode(secret + "==")
    except ValueError:
        raise SignatureError("the connector's secret is not valid base64") from None


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` entry of webhook-signature."""
    # surrogatepass: a header never holds surrogates, a caller's str might; no crash either way
    signed = f"{msg_id}.{timestamp}.".encode("utf-8", "surrogatepass") + body
    digest = _hmac(_standard_key(secret), signed)
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(
    secrets: Iterable[str | None], body: bytes, headers: Mapping[str, str],
    now: float | None = None, tolerance: int = TOLERANCE,
) -> None:
    """Check webhook-id, webhook-timestamp and any of the webhook-signature entries."""
    msg_id = _header(headers, "webhook-id")
    raw_ts = _header(headers, "webhook-timestamp")
    passed = _header(headers, "webhook-signature").split()
    ts = _timestamp(raw_ts)
    _check_fresh(ts, time.time() if now is None else now, tolerance)
    for secret in _secrets(secrets):
        expected = sign_standard(secret, msg_id, ts, body).split(",", 1)[1]
        for entry in passed:
            version, _, sig = entry.partition(",")
            if version == "v1" and _same(expected, sig):
                return
    raise SignatureError("signature mismatch")
