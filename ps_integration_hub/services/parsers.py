"""Split a verified delivery into events, one per vendor notification.

A batched delivery (a HubSpot array, a Salesforce message with several
notifications) becomes several events. Each event carries the key that makes it
idempotent (the vendor's own event id where it has one), the key that orders the
events of one external object, and its payload. What cannot be parsed still becomes
an event, with ``parse_error`` set: it is stored and shown, never dropped.

The body is authentic when it gets here, so whatever it holds must end up stored:
random bytes, NUL, NaN, JSON nested 100,000 deep, a number where a string belongs. A
parser returns a ``malformed`` event for such a body and raises nothing. Everything
an event carries is storable as is: identifiers are short printable text (a btree
index entry has a size limit, PostgreSQL text refuses NUL), payloads are what jsonb
accepts (no NUL, no unpaired surrogate, no NaN or infinity, bounded depth), and the
raw body of a malformed event is kept losslessly by :func:`raw_text`.
"""

import base64
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

_logger = logging.getLogger(__name__)

SF_OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

SALESFORCE_ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
    b" <soapenv:Body>\n"
    b'  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
    b"   <Ack>true</Ack>\n"
    b"  </notificationsResponse>\n"
    b" </soapenv:Body>\n"
    b"</soapenv:Envelope>\n"
)

# deeper than any vendor's payload, shallow enough for json.dumps, jsonb and the desk's
# form to handle without hitting a recursion limit
MAX_DEPTH = 64
# identifiers (event ids, types, object ids) are indexed: a btree entry must stay small
MAX_ID_LENGTH = 255
# payload_raw holds the body as text, or this line and the body in base64 when the body
# is not UTF-8, holds NUL (PostgreSQL text cannot) or itself starts with this line
RAW_BASE64_MARKER = "[base64]\n"
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CONTAINERS = (dict, list)

CONTENT_TYPES = {
    "hubspot": ("application/json",),
    "stripe": ("application/json",),
    "bamboohr": ("application/json",),
    "standard": ("application/json",),
    "salesforce": ("text/xml", "application/soap+xml"),
}


@dataclass
class ParsedEvent:
    """One event of a delivery, ready to be inserted."""

    event_type: str
    idempotency_key: str
    external_id: str | None = None
    ordering_key: str | None = None
    payload: dict | None = None
    occurred_at: datetime | None = None
    parse_error: str | None = None
    raw: str | None = None  # the body as raw_text() keeps it, for malformed events
    portal_id: str | None = None  # HubSpot: the portal (account) the event is from
    # where ``payload`` is in the delivery's ``json_text``: -1 the whole body, k >= 0 the k-th
    # element of its array; None: not there (stored from ``payload``). Then the database reads
    # the payload out of the body it is given once, rather than from a copy of each payload
    # that Python would encode again (most of the Python time of a 100-event delivery).
    payload_index: int | None = None


@dataclass
class Delivery:
    """What one HTTP request carried."""

    events: list[ParsedEvent] = field(default_factory=list)
    organization_id: str | None = None  # Salesforce only
    json_text: str | None = None  # the body as checked JSON text, when events have a payload_index


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def raw_text(body: bytes) -> str:
    """``body`` as text PostgreSQL can store, losslessly (see :func:`raw_bytes`)."""
    try:
        text = body.decode("utf-8")  # strict: never yields a surrogate
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text or text.startswith(RAW_BASE64_MARKER):
        return RAW_BASE64_MARKER + base64.encodebytes(body).decode("ascii")
    return text


def raw_bytes(raw: str) -> bytes:
    """The body that :func:`raw_text` turned into ``raw``."""
    if raw.startswith(RAW_BASE64_MARKER):
        return base64.b64decode(raw[len(RAW_BASE64_MARKER):])
    return raw.encode("utf-8")


def _malformed(body: bytes, error: str) -> ParsedEvent:
    # the digest of the body is the key: a redelivery of the same bytes is a duplicate
    return ParsedEvent(
        event_type="malformed",
        idempotency_key=_digest(body),
        parse_error=error,
        raw=raw_text(body),
    )


def _ident(value) -> str | None:
    """``value`` as an identifier: a non-empty printable str or an int, at most
    MAX_ID_LENGTH characters; None for anything else (bool, float, dict, NUL...)."""
    kind = type(value)  # exact types, as json gives them: a bool is not an id
    if kind is int:
        value = str(value)
    elif kind is not str:
        return None
    return value if 0 < len(value) <= MAX_ID_LENGTH and value.isprintable() else None


def _name(value) -> str | None:
    """``value`` as an event type: like :func:`_ident`, and a str."""
    return _ident(value) if type(value) is str else None


def _key(value: str) -> str:
    """An idempotency key from a header: itself, or its digest when it cannot be stored."""
    return _ident(value) or _digest(value.encode("utf-8", "surrogatepass"))


def _when(value, per_second: int) -> datetime | None:
    """A vendor's epoch timestamp (seconds or milliseconds), or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return datetime.fromtimestamp(int(value) / per_second, UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):  # NaN, inf, 1e20, year out of range
        return None


def _from_ms(value) -> datetime | None:
    return _when(value, 1000)


def _from_s(value) -> datetime | None:
    return _when(value, 1)


def _storable_text(text: str) -> bool:
    return "\x00" not in text and (text.isascii() or not _SURROGATE_RE.search(text))


def _jsonb_problem(value, text: str) -> str | None:
    """Why jsonb (or the desk) would refuse ``value``, decoded from ``text``, or None.

    Cheap on the happy path: NUL and unpaired surrogates can only come from ``\\u``
    escapes (json refuses raw control characters, strict UTF-8 decoding yields no
    surrogate) and the depth cannot exceed the number of brackets, so most deliveries
    are not walked at all. Infinite numbers never get here (:func:`_finite_float`).
    """
    check_text = "\\u" in text
    if not check_text and text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    bad_text = "text holding NUL or an unpaired surrogate"
    if type(value) is str:
        return None if _storable_text(value) else bad_text
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:  # breadth first, containers only: one level per turn
        depth += 1
        if depth > MAX_DEPTH:
            return f"JSON nested deeper than {MAX_DEPTH} levels"
        if check_text:
            for item in level:
                values = item.values() if type(item) is dict else item
                if not all(_storable_text(v) for v in values if type(v) is str) or (
                        type(item) is dict and not all(_storable_text(k) for k in item)):
                    return bad_text
        level = [child for item in level for child in (item.values() if type(item) is dict else item)
                 if type(child) in _CONTAINERS]
    return None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # Python reads NaN and Infinity, jsonb does not


def _finite_float(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise ValueError(f"number out of range: {literal[:40]}")  # 1e400
    return number


def _load_json(body: bytes):
    """(value, None) for a storable JSON body, else (None, why not)."""
    value, _text, error = _load_json_text(body)
    return value, error


def _load_json_text(body: bytes):
    """(value, text, None) for a storable JSON body, else (None, None, why not)."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        return None, None, "invalid JSON: nested too deep"
    except ValueError as exc:  # also UnicodeDecodeError, and ints over 4300 digits
        return None, None, f"invalid JSON: {exc}"
    problem = _jsonb_problem(value, text)
    if problem:
        return None, None, f"unstorable JSON: {problem}"
    return value, text, None


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without its parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def content_type_ok(system: str, content_type: str | None) -> bool:
    """Whether the media type (parameters ignored) is the one the vendor sends."""
    return media_type(content_type) in CONTENT_TYPES.get(system, ("application/json",))


# HubSpot ---------------------------------------------------------------------------

def _hubspot_malformed(item, error: str, portal_id: str | None = None) -> ParsedEvent:
    raw = json.dumps(item, sort_keys=True)  # storable: the whole delivery was checked
    return ParsedEvent(
        event_type="malformed", idempotency_key=_digest(raw.encode()), parse_error=error,
        payload=item if isinstance(item, dict) else None, raw=raw, portal_id=portal_id,
    )


def _hubspot_event(item) -> ParsedEvent:
    if not isinstance(item, dict):
        return _hubspot_malformed(item, "HubSpot event that is not a JSON object")
    portal_id = _ident(item.get("portalId"))
    event_id = _ident(item.get("eventId"))
    subscription = _name(item.get("subscriptionType"))
    object_id = item.get("objectId")
    object_id = _ident(object_id) if object_id not in (None, "", 0) else ""
    if not event_id or not subscription:
        return _hubspot_malformed(item, "HubSpot event without eventId or subscriptionType", portal_id)
    if object_id is None or (item.get("portalId") is not None and portal_id is None):
        return _hubspot_malformed(item, "HubSpot event whose objectId or portalId is not an id", portal_id)
    object_type = subscription.split(".", 1)[0]
    return ParsedEvent(
        event_type=subscription,
        # HubSpot documents eventId as not guaranteed unique: unique within the portal
        idempotency_key=f"{portal_id}:{event_id}" if portal_id else event_id,
        external_id=object_id or None,
        ordering_key=f"{object_type}:{object_id}" if object_id else None,
        payload=item,
        occurred_at=_from_ms(item.get("occurredAt")),
        portal_id=portal_id,
    )


def parse_hubspot(body: bytes, headers=None) -> Delivery:
    """A JSON array of up to 100 events; dedupe on portalId and eventId."""
    data, text, error = _load_json_text(body)
    if error:
        return Delivery([_malformed(body, error)])
    if isinstance(data, dict):
        return Delivery([_in_body(_hubspot_event(data), -1)], json_text=text)
    if not isinstance(data, list) or not data:
        return Delivery([_malformed(body, "expected a non-empty JSON array of events")])
    return Delivery([_in_body(_hubspot_event(item), k) for k, item in enumerate(data)], json_text=text)


def _in_body(event: ParsedEvent, index: int) -> ParsedEvent:
    """``event``, its payload located in the body (not for a malformed one: its payload is
    what could be read of it, and its raw text is what is kept)."""
    if event.parse_error is None:
        event.payload_index = index
    return event


# Salesforce outbound message -------------------------------------------------------

def _xml_parser():
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _sobject_dict(sobject) -> tuple[str, dict]:
    xsi_type = sobject.get(f"{{{XSI_NS}}}type") or "sObject"
    sobject_type = xsi_type.split(":", 1)[-1]
    fields = {}
    for child in sobject:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        nil = child.get(f"{{{XSI_NS}}}nil") == "true"
        fields[name] = None if nil else (child.text or "")
    return sobject_type, fields


def parse_salesforce(body: bytes, headers=None) -> Delivery:
    """A SOAP ``notifications`` message with up to 100 Notification elements."""
    try:
        root = etree.fromstring(body, parser=_xml_parser())
    except etree.XMLSyntaxError as exc:
        return Delivery([_malformed(body, f"invalid XML: {exc}")])
    ns = {"o": SF_OUTBOUND_NS}
    notifications = root.find(".//o:notifications", ns)
    if notifications is None:
        return Delivery([_malformed(body, "no Salesforce <notifications> element")])
    org_id = notifications.findtext("o:OrganizationId", namespaces=ns)
    action_id = notifications.findtext("o:ActionId", namespaces=ns)
    delivery = Delivery(organization_id=org_id)
    for notification in notifications.findall("o:Notification", ns):
        notification_id = _ident(notification.findtext("o:Id", namespaces=ns))
        sobject = notification.find("o:sObject", ns)
        raw = etree.tostring(notification, encoding="unicode")
        sobject_type, fields = _sobject_dict(sobject) if sobject is not None else (None, {})
        external_id = fields.get("Id") or None
        if not notification_id or not _ident(sobject_type) or (
                external_id is not None and not _ident(external_id)):
            delivery.events.append(ParsedEvent(
                event_type="malformed", idempotency_key=_digest(raw.encode()),
                parse_error="Notification without an Id or sObject, or with an unusable one",
                raw=raw,
            ))
            continue
        delivery.events.append(ParsedEvent(
            event_type=f"{sobject_type}.outbound_message",
            idempotency_key=notification_id,
            external_id=external_id,
            ordering_key=f"{sobject_type}:{external_id}" if external_id else None,
            payload={
                "notification_id": notification_id,
                "organization_id": org_id,
                "action_id": action_id,
                "sobject_type": sobject_type,
                "sobject": fields,
            },
        ))
    if not delivery.events:
        delivery.events.append(_malformed(body, "Salesforce message without notifications"))
    return delivery


# Stripe ----------------------------------------------------------------------------

def parse_stripe(body: bytes, headers=None) -> Delivery:
    """One event object; dedupe on its id."""
    event, text, error = _load_json_text(body)
    if error:
        return Delivery([_malformed(body, error)])
    if not isinstance(event, dict) or not _ident(event.get("id")) or not _name(event.get("type")):
        return Delivery([_malformed(body, "Stripe event without id or type")])
    data = event.get("data")
    if data is not None and not isinstance(data, dict):
        return Delivery([_malformed(body, "Stripe event whose data is not an object")])
    obj = (data or {}).get("object")
    obj = obj if isinstance(obj, dict) else {}
    obj_id, obj_kind = _ident(obj.get("id")), _ident(obj.get("object")) or "object"
    return Delivery([ParsedEvent(
        event_type=event["type"],
        idempotency_key=str(event["id"]),
        external_id=obj_id,
        ordering_key=f"{obj_kind}:{obj_id}" if obj_id else None,
        payload=event,
        occurred_at=_from_s(event.get("created")),
        payload_index=-1,
    )], json_text=text)


# BambooHR --------------------------------------------------------------------------

def parse_bamboohr(body: bytes, headers=None) -> Delivery:
    """One event-based webhook; it has no event id, so the body digest is the key."""
    event, text, error = _load_json_text(body)
    if error:
        return Delivery([_malformed(body, error)])
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or not _name(event.get("type")):
        return Delivery([_malformed(body, "BambooHR event without type or data")])
    employee = data.get("employeeId")
    employee_id = _ident(employee) if employee not in (None, "", 0) else None
    if employee not in (None, "", 0) and employee_id is None:
        return Delivery([_malformed(body, "BambooHR event whose employeeId is not an id")])
    return Delivery([ParsedEvent(
        event_type=event["type"],
        idempotency_key=_digest(body),
        external_id=employee_id,
        ordering_key=f"employee:{employee_id}" if employee_id else None,
        payload=event,
        payload_index=-1,
    )], json_text=text)


# Standard Webhooks -----------------------------------------------------------------

def parse_standard(body: bytes, headers=None) -> Delivery:
    """One message; webhook-id is the idempotency key, as the specification says."""
    header_id = (headers or {}).get("webhook-id")
    msg_id = _key(header_id) if header_id else _digest(body)
    event, error = _load_json(body)
    if not error and isinstance(event, dict):
        event_type, data = event.get("type"), event.get("data")
        if event_type is not None and not _name(event_type):
            error = "message whose type is not a name"
        elif isinstance(data, dict) and data.get("id") not in (None, "", 0) and not _ident(data["id"]):
            error = "message whose data.id is not an id"
    if error:
        parsed = _malformed(body, error)
        parsed.idempotency_key = msg_id
        return Delivery([parsed])
    data = event.get("data") if isinstance(event, dict) else None
    external_id = _ident(data.get("id")) if isinstance(data, dict) and data.get("id") else None
    event_type = event.get("type") if isinstance(event, dict) else None
    return Delivery([ParsedEvent(
        event_type=event_type or "message",
        idempotency_key=msg_id,
        external_id=external_id,
        ordering_key=external_id,
        payload=event if isinstance(event, dict) else {"value": event},
        occurred_at=_from_s((headers or {}).get("webhook-timestamp")),
    )])


PARSERS = {
    "hubspot": parse_hubspot,
    "salesforce": parse_salesforce,
    "stripe": parse_stripe,
    "bamboohr": parse_bamboohr,
    "standard": parse_standard,
}


def parse_safely(parser, body: bytes, headers=None, system: str = "") -> Delivery:
    """``parser(body, headers)``; never raises.

    The parsers handle every input they are known to meet (the fuzz test sends them
    thousands); should one still fail, the authentic body is kept as a malformed event
    rather than answered with a 500 and lost.
    """
    try:
        return parser(body, headers)
    except Exception as exc:  # see the docstring
        _logger.exception("ps_hub: the %s parser failed on a delivery", system)
        return Delivery([_malformed(body, f"parser failure: {exc.__class__.__name__}")])


def parse_delivery(system: str, body: bytes, headers=None) -> Delivery:
    """Split ``body`` as ``system`` (one of PARSERS) sends it; never raises."""
    return parse_safely(PARSERS[system], body, headers, system)


# The building blocks of the parsers above, for the parser of a system that another module
# adds (ps.hub.connector._hub_parser): with them its events are storable whatever an
# authentic body holds, as the module docstring requires.
load_json = _load_json  # (value, None) for a storable JSON body, else (None, why not)
load_json_text = _load_json_text  # (value, text, None): the text for Delivery.json_text, else (None, None, why not)
malformed = _malformed  # the malformed event that keeps a whole body, keyed by its digest
ident = _ident  # an identifier (printable, short) or None
event_name = _name  # an event type name or None
from_seconds = _from_s  # an epoch timestamp in seconds as a naive UTC datetime, or None
from_milliseconds = _from_ms
