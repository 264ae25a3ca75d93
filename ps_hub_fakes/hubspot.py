"""Fake HubSpot CRM v3."""

from __future__ import annotations

import copy
import time
import uuid
from collections import deque
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .base import Answer, FakeVendor, RecordedRequest, _hs_now, _routes
from .fixtures import load_json

# --------------------------------------------------------------------------- HubSpot


def _hs_value(value: Any) -> str:
    """HubSpot stores every property as a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_HS_OBJECTS = "(deals|companies|contacts|line_items)"
# the rate-limit header that a 429 of each policy shows spent
_HS_POLICY_HEADER = {
    "TEN_SECONDLY_ROLLING": "Remaining",
    "SECONDLY": "Secondly-Remaining",
    "DAILY": "Daily-Remaining",
}
_HS_SINGULAR = {
    "deals": "DEAL",
    "companies": "COMPANY",
    "contacts": "CONTACT",
    "line_items": "LINE_ITEM",
}


class FakeHubSpot(FakeVendor):
    """HubSpot CRM v3: deals, companies, contacts and line items, and the account details.

    ``token``: when set, ``Authorization: Bearer <token>`` must match it; when
    None any bearer token is accepted (but one is required).

    Rate limits, as HubSpot's API usage guidelines describe them: every 2xx and 429 answer
    carries ``X-HubSpot-RateLimit-Max`` / ``-Remaining`` / ``-Interval-Milliseconds`` (the
    rolling window) and ``-Daily`` / ``-Daily-Remaining``, counted per access token over
    the requests it let through.

    - ``rate_limit=(max_requests, seconds)``, e.g. ``(100, 10.0)`` (HubSpot's limit for
      public OAuth apps; 190 per 10 s for a Professional private app): a token's request
      beyond ``max_requests`` in the last ``seconds`` (a rolling window) gets HubSpot's 429
      with ``policyName`` TEN_SECONDLY_ROLLING and ``X-HubSpot-RateLimit-Remaining: 0``; a
      refused request does not count. A client that reads the headers sees ``Remaining: 0``
      on the answer that spent the window. None (the default): nothing is refused, and the
      headers report a window of UNLIMITED requests per 10 s that the tests and benchmarks
      never spend (a fake that refuses nothing must not tell its clients to wait).
    - ``daily_limit=N``: a token's request beyond N accepted ones gets the DAILY 429
      (``X-HubSpot-RateLimit-Daily-Remaining: 0``). None: 1,000,000 reported, not enforced.
    - ``rate_limit_next(n, policy)`` forces the next ``n`` answers to be a 429 of ``policy``
      (SECONDLY also reports ``-Secondly`` / ``-Secondly-Remaining: 0``, which HubSpot sends
      to the apps it holds to a per-second limit).

    HubSpot sends no Retry-After with a 429: a client waits the window.
    """

    default_failure_status = 429
    RATE_INTERVAL_MS = 10_000
    UNLIMITED = 1_000_000
    RATE_SECONDLY = 10
    RATE_DAILY = 1_000_000
    PORTAL_ID = 62515
    BATCH_MAX = 100  # inputs per call of a batch endpoint

    routes = _routes(
        ("GET", rf"/crm/v3/objects/{_HS_OBJECTS}/([^/]+)", "_get_object"),
        ("PATCH", rf"/crm/v3/objects/{_HS_OBJECTS}/([^/]+)", "_patch_object"),
        ("POST", rf"/crm/v3/objects/{_HS_OBJECTS}/batch/read", "_batch_read"),
        ("POST", rf"/crm/v3/objects/{_HS_OBJECTS}/batch/update", "_batch_update"),
        ("GET", r"/account-info/v3/details", "_account_details"),
    )

    def __init__(
        self,
        token: str | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        rate_limit: tuple[int, float] | None = None,
        daily_limit: int | None = None,
    ) -> None:
        self.token = token
        self.rate_limit = rate_limit
        self.daily_limit = daily_limit
        super().__init__(port=port, latency=latency, host=host)

    @property
    def window(self) -> tuple[int, float]:
        """(requests, seconds) of the rolling window the headers report."""
        return self.rate_limit or (self.UNLIMITED, self.RATE_INTERVAL_MS / 1000)

    # data

    def _load_defaults(self) -> None:
        deal = load_json("hubspot/deal_19077001.json")
        company = load_json("hubspot/company_5500071.json")
        contact = load_json("hubspot/contact_7300912.json")
        self.deals: dict[str, dict[str, Any]] = {deal["id"]: deal}
        self.companies: dict[str, dict[str, Any]] = {company["id"]: company}
        self.contacts: dict[str, dict[str, Any]] = {contact["id"]: contact}
        self.line_items: dict[str, dict[str, Any]] = {
            item["id"]: item for item in load_json("hubspot/line_items_batch_read.json")["results"]
        }
        # per access token: the times of the requests let through in the window, and today's count
        self._recent: dict[str, deque[float]] = {}
        self._daily_used: dict[str, int] = {}
        self.refused = 0  # requests the rolling window or the daily limit refused

    def add_company(
        self, company_id: str, name: str | None = None, **properties: Any
    ) -> dict[str, Any]:
        """Store a company in the fixture's shape and return it."""
        company_id = str(company_id)
        now = _hs_now()
        props = {
            "name": name or f"Company {company_id}",
            "domain": f"company-{company_id}.example",
            "city": "London",
            "country": "United Kingdom",
            "hs_object_id": company_id,
            **properties,
        }
        record = {
            "id": company_id,
            "properties": {key: _hs_value(value) for key, value in props.items()},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        with self._lock:
            self.companies[company_id] = record
        return record

    def add_contact(
        self, contact_id: str, email: str | None = None, **properties: Any
    ) -> dict[str, Any]:
        """Store a contact in the fixture's shape and return it."""
        contact_id = str(contact_id)
        now = _hs_now()
        props = {
            "firstname": "Test",
            "lastname": f"Contact {contact_id}",
            "email": email or f"contact-{contact_id}@example.com",
            "hs_object_id": contact_id,
            **properties,
        }
        record = {
            "id": contact_id,
            "properties": {key: _hs_value(value) for key, value in props.items()},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        with self._lock:
            self.contacts[contact_id] = record
        return record

    def add_deal(
        self,
        deal_id: str,
        company_id: str | None,
        contact_id: str | None,
        line_items: list[dict[str, Any]],
        **properties: Any,
    ) -> dict[str, Any]:
        """Store a deal in the fixture's shape (associations included) and return it.

        ``line_items`` are line-item property dicts (``name``, ``hs_sku``,
        ``quantity``, ``price``, ``discount`` (off each unit),
        ``hs_discount_percentage``, ``billing_model``...), each with an
        optional ``id`` (default ``<deal_id>NNN``). Each line's ``amount`` is
        calculated as HubSpot does (see ``line_amount``) unless given.
        Unknown companies and contacts are created with
        ``add_company``/``add_contact``; None leaves the association out.
        Properties default to the fixture deal's, with ``amount`` the sum of
        the lines' amounts.
        """
        deal_id = str(deal_id)
        items = []
        total = Decimal(0)
        for index, spec in enumerate(line_items, start=1):
            props = dict(spec)
            item_id = str(props.pop("id", f"{deal_id}{index:03d}"))
            props.setdefault("amount", self.line_amount(props))
            total += Decimal(str(props["amount"] or 0))
            items.append(
                {
                    "id": item_id,
                    "properties": {key: _hs_value(value) for key, value in props.items()},
                    "archived": False,
                }
            )
        now = _hs_now()
        template = load_json("hubspot/deal_19077001.json")["properties"]
        props = {
            **template,
            "dealname": f"Deal {deal_id}",
            "amount": format(total.normalize(), "f"),
            "closedate": now,
            "hs_object_id": deal_id,
            "po_number": f"PO-{deal_id}",
            **properties,
        }
        associations: dict[str, Any] = {}
        if company_id is not None:
            associations["companies"] = {
                "results": [{"id": str(company_id), "type": "deal_to_company"}]
            }
        if contact_id is not None:
            associations["contacts"] = {
                "results": [{"id": str(contact_id), "type": "deal_to_contact"}]
            }
        if items:
            associations["line items"] = {
                "results": [{"id": item["id"], "type": "deal_to_line_item"} for item in items]
            }
        record = {
            "id": deal_id,
            "properties": {key: _hs_value(value) for key, value in props.items()},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
            "associations": associations,
        }
        with self._lock:
            if company_id is not None and str(company_id) not in self.companies:
                self.add_company(str(company_id))
            if contact_id is not None and str(contact_id) not in self.contacts:
                self.add_contact(str(contact_id))
            for item in items:
                self.line_items[item["id"]] = item
            self.deals[deal_id] = record
        return record

    @staticmethod
    def line_amount(props: dict[str, Any]) -> str:
        """A line item's ``amount`` (net price) as HubSpot calculates it.

        quantity x price, less ``discount`` off each unit, less
        ``hs_discount_percentage`` of the line's total (HubSpot applies the
        percentage to the total, not to the unit price), rounded to the cent.
        """
        quantity = Decimal(str(props.get("quantity", 1) or 0))
        price = Decimal(str(props.get("price") or 0))
        amount = quantity * (price - Decimal(str(props.get("discount") or 0)))
        percentage = Decimal(str(props.get("hs_discount_percentage") or 0))
        cent = Decimal("0.01")
        amount -= (amount * percentage / 100).quantize(cent, ROUND_HALF_UP)
        return format(amount.quantize(cent, ROUND_HALF_UP), "f")

    # hooks

    def _authenticate(self, req: RecordedRequest) -> Answer | None:
        auth = req.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token and (self.token is None or token == self.token):
            return None
        return Answer(
            401,
            {
                "status": "error",
                "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "category": "INVALID_AUTHENTICATION",
            },
        )

    def rate_limit_next(
        self,
        n: int = 1,
        policy: str = "TEN_SECONDLY_ROLLING",
        retry_after: float | datetime | None = None,
    ) -> None:
        """Answer the next ``n`` requests with HubSpot's 429 for ``policy``.

        ``policy`` is the limit that was hit, as HubSpot names it in the body:
        TEN_SECONDLY_ROLLING (the headers show the window's ``Remaining`` at 0), SECONDLY
        (``Secondly-Remaining`` at 0) or DAILY (``Daily-Remaining`` at 0); the other
        headers keep their real counts. HubSpot promises no Retry-After: pass
        ``retry_after`` (seconds or a datetime) to play a proxy or gateway that adds one.
        """
        self.fail_next(n, status=429, body=self._rate_limited_body(policy), retry_after=retry_after)

    def limit_rate(self, max_requests: int | None = 100, interval_ms: int = 10_000) -> None:
        """Enforce (or with None lift) a rolling window of ``max_requests`` per ``interval_ms``
        from now on: ``rate_limit`` set on a running fake, its windows and refusals reset."""
        with self._lock:
            self.rate_limit = (max_requests, interval_ms / 1000) if max_requests else None
            self._recent.clear()
            self.refused = 0

    @staticmethod
    def _rate_limited_body(policy: str) -> dict[str, Any]:
        return dict(load_json("hubspot/rate_limited_429.json"), policyName=policy,
                    correlationId=str(uuid.uuid4()), message=f"You have reached your {policy.lower()} limit.")

    @staticmethod
    def _token_of(req: RecordedRequest) -> str:
        return req.headers.get("Authorization", "").partition(" ")[2]

    def _window_of(self, token: str) -> deque[float]:
        """The token's requests of the rolling window (older ones dropped)."""
        recent = self._recent.setdefault(token, deque())
        horizon = time.monotonic() - self.window[1]
        while recent and recent[0] <= horizon:
            recent.popleft()
        return recent

    def _throttle(self, req: RecordedRequest) -> Answer | None:
        token = self._token_of(req)
        recent = self._window_of(token)
        if self.daily_limit is not None and self._daily_used.get(token, 0) >= self.daily_limit:
            self.refused += 1
            return Answer(429, self._rate_limited_body("DAILY"))
        if self.rate_limit is not None and len(recent) >= self.rate_limit[0]:
            self.refused += 1
            return Answer(429, self._rate_limited_body("TEN_SECONDLY_ROLLING"))
        recent.append(time.monotonic())
        self._daily_used[token] = self._daily_used.get(token, 0) + 1
        return None

    def _decorate(self, answer: Answer, req: RecordedRequest) -> None:
        if answer.status != 429 and not 200 <= answer.status < 300:
            return
        token = self._token_of(req)
        recent = self._window_of(token)
        limit, seconds = self.window
        daily = self.RATE_DAILY if self.daily_limit is None else self.daily_limit
        counts = {
            "Remaining": max(0, limit - len(recent)),
            "Daily-Remaining": max(0, daily - self._daily_used.get(token, 0)),
        }
        if answer.status == 429:
            # the limit that was hit is spent, the others show what they really have left
            policy = answer.body.get("policyName") if isinstance(answer.body, dict) else None
            counts[_HS_POLICY_HEADER.get(policy, "Remaining")] = 0
            if policy == "SECONDLY":
                answer.headers.setdefault("X-HubSpot-RateLimit-Secondly", str(self.RATE_SECONDLY))
        prefix = "X-HubSpot-RateLimit-"
        for name, value in {
            "Interval-Milliseconds": round(seconds * 1000),
            "Max": limit,
            "Remaining": counts["Remaining"],
            "Daily": daily,
            "Daily-Remaining": counts["Daily-Remaining"],
            **({"Secondly-Remaining": counts["Secondly-Remaining"]} if "Secondly-Remaining" in counts else {}),
        }.items():
            answer.headers.setdefault(prefix + name, str(value))

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        if status == 429:
            return load_json("hubspot/rate_limited_429.json"), {}
        return super()._failure_defaults(status)

    # endpoints

    def _account_details(self, req: RecordedRequest) -> Answer:
        """GET /account-info/v3/details: the account's portal id, time zone and currency."""
        return Answer(200, {
            "portalId": self.PORTAL_ID, "accountType": "STANDARD", "timeZone": "Europe/London",
            "companyCurrency": "GBP", "additionalCurrencies": ["EUR", "USD"], "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0, "uiDomain": "app-eu1.hubspot.com", "dataHostingLocation": "eu1",
        })

    @staticmethod
    def _error(status: int, message: str, category: str, **extra: Any) -> Answer:
        return Answer(
            status, {"status": "error", "message": message, "category": category, **extra}
        )

    @staticmethod
    def _view(record: dict[str, Any], properties: str | None) -> dict[str, Any]:
        """A copy of ``record`` without associations, restricted to ``properties`` if given."""
        view = copy.deepcopy({key: value for key, value in record.items() if key != "associations"})
        if properties:
            wanted = {name.strip() for name in properties.split(",")} | {"hs_object_id"}
            view["properties"] = {
                key: value for key, value in view["properties"].items() if key in wanted
            }
        return view

    def _not_found(self) -> Answer:
        return self._error(
            404, "Object not found. objectId are usually numeric.", "OBJECT_NOT_FOUND"
        )

    def _get_object(self, req: RecordedRequest, object_type: str, object_id: str) -> Answer:
        record = getattr(self, object_type).get(object_id)
        if record is None:
            return self._not_found()
        view = self._view(record, req.query.get("properties"))
        if "associations" in req.query:
            wanted = {
                name.strip().replace(" ", "_") for name in req.query["associations"].split(",")
            }
            associations = {
                key: copy.deepcopy(value)
                for key, value in record.get("associations", {}).items()
                if key.replace(" ", "_") in wanted
            }
            if associations:
                view["associations"] = associations
        return Answer(200, view)

    def _patch_object(self, req: RecordedRequest, object_type: str, object_id: str) -> Answer:
        record = getattr(self, object_type).get(object_id)
        if record is None:
            return self._not_found()
        properties = req.body.get("properties") if isinstance(req.body, dict) else None
        if not isinstance(properties, dict):
            return self._error(
                400, 'Invalid input JSON: expected {"properties": {...}}', "VALIDATION_ERROR"
            )
        self._merge(record, properties)
        return Answer(200, self._view(record, None))

    @staticmethod
    def _merge(record: dict[str, Any], properties: dict[str, Any]) -> None:
        record["properties"].update({key: _hs_value(value) for key, value in properties.items()})
        record["updatedAt"] = _hs_now()

    def _batch_answer(
        self, object_type: str, results: list[dict[str, Any]], missing: list[str], started: str
    ) -> Answer:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            body["numErrors"] = 1
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {_HS_SINGULAR[object_type]} objects, they may "
                    "be deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            ]
        body["startedAt"] = started
        body["completedAt"] = _hs_now()
        return Answer(207 if missing else 200, body)

    def _inputs(self, req: RecordedRequest) -> list[dict[str, Any]] | None:
        inputs = req.body.get("inputs") if isinstance(req.body, dict) else None
        if isinstance(inputs, list) and all(isinstance(i, dict) and "id" in i for i in inputs):
            return inputs
        return None

    def _batch_read(self, req: RecordedRequest, object_type: str) -> Answer:
        started = _hs_now()
        inputs = self._inputs(req)
        if inputs is None:
            return self._error(
                400, 'Invalid input JSON: expected {"inputs": [{"id": ...}]}', "VALIDATION_ERROR"
            )
        properties = req.body.get("properties")
        wanted = ",".join(properties) if isinstance(properties, list) else None
        store = getattr(self, object_type)
        results, missing = [], []
        for item in inputs:
            record = store.get(str(item["id"]))
            if record is None:
                missing.append(str(item["id"]))
            else:
                results.append(self._view(record, wanted))
        return self._batch_answer(object_type, results, missing, started)

    def _batch_update(self, req: RecordedRequest, object_type: str) -> Answer:
        started = _hs_now()
        inputs = self._inputs(req)
        if inputs is None or not all(isinstance(i.get("properties"), dict) for i in inputs):
            return self._error(
                400,
                'Invalid input JSON: expected {"inputs": [{"id": ..., "properties": {...}}]}',
                "VALIDATION_ERROR",
            )
        if len(inputs) > self.BATCH_MAX:
            return self._error(
                400, f"Batch input size must be between 1 and {self.BATCH_MAX}, got {len(inputs)}.",
                "VALIDATION_ERROR",
            )
        ids = [str(item["id"]) for item in inputs]
        duplicates = sorted({object_id for object_id in ids if ids.count(object_id) > 1})
        if duplicates:
            return self._error(
                400, f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
                "VALIDATION_ERROR",
            )
        store = getattr(self, object_type)
        results, missing = [], []
        for item in inputs:
            record = store.get(str(item["id"]))
            if record is None:
                missing.append(str(item["id"]))
            else:
                self._merge(record, item["properties"])
                results.append(self._view(record, None))
        return self._batch_answer(object_type, results, missing, started)


