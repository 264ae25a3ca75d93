"""Outbound pushes in plain Python: idempotency keys, collapsing, vendor answers, echoes.

An outbound event carries the vendor properties of one Odoo record for one external object
(its payload: ``{"external_model", "external_id", "record", "version", "properties"}``).
Nothing here touches the ORM: the event model stores, the handlers call the vendors, and
these functions decide.
"""

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

# HubSpot's batch endpoints take at most 100 inputs per call
HUBSPOT_BATCH_MAX = 100
# the object types of HubSpot's CRM API paths, by the names bindings use
HUBSPOT_OBJECTS = {"deal": "deals", "company": "companies", "contact": "contacts", "line_item": "line_items"}
# the REST API version of Salesforce calls
SALESFORCE_API_VERSION = "v62.0"
# the systems whose webhooks report changes that can be echoes of our pushes
ECHO_SYSTEMS = ("hubspot", "salesforce")
# a webhook older than our push by more than this is not its echo (clocks differ a little)
ECHO_CLOCK_SKEW = timedelta(seconds=5)


_PATH_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def path_safe(value) -> bool:
    """Whether ``value`` can go into a vendor's URL path as it is (an object id or type): no
    slash, query or encoding that would call another endpoint than the object's."""
    return isinstance(value, str) and bool(_PATH_SAFE.fullmatch(value)) and value not in (".", "..")


def digest(values: dict) -> str:
    """A short stable digest of pushed values (the same values give the same digest)."""
    text = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def push_key(external_model: str, external_id: str, record: str, version: str) -> str:
    """The idempotency key of the push of ``record`` ("model,id") at ``version`` to an object:
    pushing the same version of the same record again adds nothing."""
    return f"push:{external_model}:{external_id}:{record}:{version}"


def default_version(write_date: datetime | None, values: dict) -> str:
    """A record's version: when it was last written and what it pushes. Two changes in one
    transaction share the write date; the digest tells them apart."""
    stamp = write_date.isoformat(timespec="microseconds") if write_date else "-"
    return f"{stamp}/{digest(values)}"


def ordering_key(external_model: str, external_id: str) -> str:
    """The pushes of one external object run in their order, one object at a time."""
    return f"{external_model}:{external_id}"


def merge_properties(queued: dict | None, latest: dict) -> dict:
    """What a queued push carries once a later change of its record is folded into it: every
    property it had, each with its latest value."""
    return {**(queued or {}), **latest}


# ------------------------------------------------------------------ vendor values

def vendor_text(value) -> str:
    """A value as the CRMs store and echo it: text, booleans as true/false, no value as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def same_value(pushed, echoed) -> bool:
    """Whether a value a webhook shows is the one we pushed: compared as the vendor stores it,
    numbers by value (we push 1500.0, HubSpot may show 1500)."""
    if echoed is None:
        echoed = ""
    pushed_text, echoed_text = vendor_text(pushed), vendor_text(echoed)
    if pushed_text == echoed_text:
        return True
    if isinstance(pushed, bool):
        return False
    try:
        return Decimal(pushed_text) == Decimal(echoed_text)
    except (InvalidOperation, ValueError):
        return False


# ------------------------------------------------------------------ HubSpot answers

def hubspot_batch_failures(ids: list[str], body) -> dict[str, str]:
    """{object id: error} of the inputs a HubSpot batch answer (200 or 207 multi-status)
    reports failed; the other ids were updated.

    The errors array names the ids of each error in ``context.ids`` (or ``context.id``); an
    error naming none fails every input that is not among the results, so that no event is
    called done without HubSpot saying so.
    """
    body = body if isinstance(body, dict) else {}
    done = {str(result.get("id")) for result in body.get("results") or [] if isinstance(result, dict)}
    failures: dict[str, str] = {}
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        message = f"{error.get('category') or error.get('status') or 'error'}: {error.get('message') or ''}".strip()
        context = error.get("context") if isinstance(error.get("context"), dict) else {}
        named = context.get("ids") or context.get("id") or []
        named = [named] if isinstance(named, str) else named
        named = [str(i) for i in named if str(i) in ids]
        for object_id in named or [i for i in ids if i not in done]:
            failures.setdefault(object_id, message)
    for object_id in ids:
        if object_id not in done and object_id not in failures:
            failures[object_id] = "HubSpot's answer does not list this object among the updated ones"
    return failures


# ------------------------------------------------------------------ echoes

@dataclass(frozen=True, slots=True)
class Change:
    """What an inbound event says changed on an external object."""

    external_model: str
    external_id: str
    values: dict
    occurred_at: datetime | None = None


def change_of(system: str, event_type: str, payload, occurred_at: datetime | None = None) -> Change | None:
    """The change an inbound event reports, for the systems whose changes can echo our
    pushes; None for any other event.

    HubSpot: an ``<object>.propertyChange`` names one property and its new value.
    Salesforce: an outbound message carries the fields of the sObject, Id included.
    """
    if not isinstance(payload, dict):
        return None
    if system == "hubspot" and event_type.endswith(".propertyChange"):
        name, object_id = payload.get("propertyName"), payload.get("objectId")
        if not isinstance(name, str) or object_id in (None, ""):
            return None
        return Change(event_type.split(".", 1)[0], str(object_id), {name: payload.get("propertyValue")}, occurred_at)
    if system == "salesforce" and event_type.endswith(".outbound_message"):
        fields = payload.get("sobject")
        if not isinstance(fields, dict) or not fields.get("Id"):
            return None
        values = {key: value for key, value in fields.items() if key != "Id"}
        return Change(payload.get("sobject_type") or event_type.split(".", 1)[0], str(fields["Id"]), values,
                      occurred_at or _salesforce_time(fields.get("LastModifiedDate")))
    return None


@dataclass(frozen=True, slots=True)
class Pushed:
    """One push that reached the vendor: the event that made it, when, and what it set."""

    event_id: int
    external_model: str
    external_id: str
    properties: dict
    started_at: datetime | None


def echo_of(change: Change, pushes: list[Pushed], real_changes: Iterable[Change] = ()) -> Pushed | None:
    """The push ``change`` is the echo of, or None.

    An echo is a change, made no earlier than the push began (give or take the clocks), whose
    every value that we pushed is the value of the latest push of that property to the object,
    and which changes nothing we did not push... except that a Salesforce message carries the
    whole record: there, the fields we pushed must all be present and equal ours.
    ``pushes`` are recent pushes, any order.

    ``real_changes`` are the changes, any order, that came before ``change`` and were not
    echoes (processed, or about to be, as someone's). A real change of the property (HubSpot),
    or of a pushed field to another value (Salesforce), made between the push and ``change``
    means the CRM left our value: ``change`` bringing it back is someone's too (pushed ``sale``,
    someone set ``cancelled``, then ``sale`` again), not the echo. A real change the clocks
    cannot place counts as in between: processing a change twice costs less than losing one.
    """
    mine = sorted((p for p in pushes if p.external_model == change.external_model
                   and p.external_id == change.external_id),
                  key=lambda p: (p.started_at or datetime.min, p.event_id), reverse=True)
    if not mine:
        return None
    latest: dict[str, tuple] = {}  # property -> (its latest pushed value, the push)
    for push in mine:
        for name, value in push.properties.items():
            latest.setdefault(name, (value, push))
    between = [c for c in real_changes if c.external_model == change.external_model
               and c.external_id == change.external_id]
    if len(change.values) == 1:  # a HubSpot property change
        ((name, value),) = change.values.items()
        if name not in latest:
            return None
        pushed_value, push = latest[name]
        if not same_value(pushed_value, value) or not _after(change, push):
            return None
        if any(name in c.values and _between(c, push, change) for c in between):
            return None
        return push
    # a whole record (Salesforce): the latest push's fields all came back as we set them
    push = mine[0]
    if not push.properties or not _after(change, push):
        return None
    for name, value in push.properties.items():
        if name not in change.values or not same_value(value, change.values[name]):
            return None
    for real in between:
        if _between(real, push, change) and any(
                name in real.values and not same_value(value, real.values[name])
                for name, value in push.properties.items()):
            return None
    return push


def _salesforce_time(value) -> datetime | None:
    """A Salesforce dateTime (2026-11-20T10:00:00.000Z) as naive UTC, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=None) - (when.utcoffset() or timedelta(0))


def _after(change: Change, push: Pushed) -> bool:
    if change.occurred_at is None or push.started_at is None:
        return True
    return change.occurred_at >= push.started_at - ECHO_CLOCK_SKEW


def _between(real: Change, push: Pushed, change: Change) -> bool:
    """Whether ``real`` was made after ``push`` began (give or take the clocks) and no later
    than ``change``; a time that is not known places it in between."""
    if not _after(real, push):
        return False
    if real.occurred_at is None or change.occurred_at is None:
        return True
    return real.occurred_at <= change.occurred_at
