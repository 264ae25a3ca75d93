"""Split a verified delivery into events, one per vendor notification.

A batched delivery (a HubSpot array, a Salesforce message with several
notifications) becomes several events. Each event carries the key that makes it
idempotent (the vendor's own event id where it has one), the key that orders the
events of one external object, and its payload. What cannot be parsed still becomes
an event, with ``parse_error`` set: it is stored and shown, never dropped.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

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
    raw: str | None = None


@dataclass
class Delivery:
    """What one HTTP request carried."""

    events: list[ParsedEvent] = field(default_factory=list)
    organization_id: str | None = None  # Salesforce only


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _malformed(body: bytes, error: str) -> ParsedEvent:
    return ParsedEvent(
        event_type="malformed",
        idempotency_key=_digest(body),
        parse_error=error,
        raw=body.decode("utf-8", errors="replace"),
    )


def _from_ms(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):
        return None


def _from_s(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):
        return None


def _json(body: bytes):
    return json.loads(body.decode("utf-8"))


def content_type_ok(system: str, content_type: str | None) -> bool:
    """Whether the media type (parameters ignored) is the one the vendor sends."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in CONTENT_TYPES.get(system, ("application/json",))


# HubSpot ---------------------------------------------------------------------------

def _hubspot_event(item) -> ParsedEvent:
    if not isinstance(item, dict) or not item.get("eventId") or not item.get("subscriptionType"):
        raw = json.dumps(item, sort_keys=True)
        return ParsedEvent(
            event_type="malformed", idempotency_key=_digest(raw.encode()),
            parse_error="HubSpot event without eventId or subscriptionType",
            payload=item if isinstance(item, dict) else None, raw=raw,
        )
    object_type = item["subscriptionType"].split(".", 1)[0]
    object_id = str(item.get("objectId") or "")
    return ParsedEvent(
        event_type=item["subscriptionType"],
        idempotency_key=str(item["eventId"]),
        external_id=object_id or None,
        ordering_key=f"{object_type}:{object_id}" if object_id else None,
        payload=item,
        occurred_at=_from_ms(item.get("occurredAt")),
    )


def parse_hubspot(body: bytes, headers=None) -> Delivery:
    """A JSON array of up to 100 events; dedupe on eventId."""
    try:
        data = _json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return Delivery([_malformed(body, f"invalid JSON: {exc}")])
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        return Delivery([_malformed(body, "expected a non-empty JSON array of events")])
    return Delivery([_hubspot_event(item) for item in data])


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
        notification_id = notification.findtext("o:Id", namespaces=ns)
        sobject = notification.find("o:sObject", ns)
        raw = etree.tostring(notification, encoding="unicode")
        if not notification_id or sobject is None:
            delivery.events.append(ParsedEvent(
                event_type="malformed", idempotency_key=_digest(raw.encode()),
                parse_error="Notification without Id or sObject", raw=raw,
            ))
            continue
        sobject_type, fields = _sobject_dict(sobject)
        external_id = fields.get("Id")
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
    try:
        event = _json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return Delivery([_malformed(body, f"invalid JSON: {exc}")])
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        return Delivery([_malformed(body, "Stripe event without id or type")])
    obj = (event.get("data") or {}).get("object") or {}
    obj_id = obj.get("id") if isinstance(obj, dict) else None
    return Delivery([ParsedEvent(
        event_type=event["type"],
        idempotency_key=event["id"],
        external_id=obj_id,
        ordering_key=f"{obj.get('object', 'object')}:{obj_id}" if obj_id else None,
        payload=event,
        occurred_at=_from_s(event.get("created")),
    )])


# BambooHR --------------------------------------------------------------------------

def parse_bamboohr(body: bytes, headers=None) -> Delivery:
    """One event-based webhook; it has no event id, so the body digest is the key."""
    try:
        event = _json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return Delivery([_malformed(body, f"invalid JSON: {exc}")])
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict) or not event.get("type"):
        return Delivery([_malformed(body, "BambooHR event without type or data")])
    employee_id = str(data.get("employeeId") or "") or None
    return Delivery([ParsedEvent(
        event_type=event["type"],
        idempotency_key=_digest(body),
        external_id=employee_id,
        ordering_key=f"employee:{employee_id}" if employee_id else None,
        payload=event,
    )])


# Standard Webhooks -----------------------------------------------------------------

def parse_standard(body: bytes, headers=None) -> Delivery:
    """One message; webhook-id is the idempotency key, as the specification says."""
    msg_id = (headers or {}).get("webhook-id") or _digest(body)
    try:
        event = _json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        parsed = _malformed(body, f"invalid JSON: {exc}")
        parsed.idempotency_key = msg_id
        return Delivery([parsed])
    event_type = event.get("type") if isinstance(event, dict) else None
    data = event.get("data") if isinstance(event, dict) else None
    external_id = str(data.get("id")) if isinstance(data, dict) and data.get("id") else None
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


def parse_delivery(system: str, body: bytes, headers=None) -> Delivery:
    """Split ``body`` as ``system`` sends it."""
    return PARSERS[system](body, headers)
