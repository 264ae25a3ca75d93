"""Local HTTP servers that play the external systems' REST APIs.

Used by the tests, the demo and the benchmarks. Each fake keeps its data in
plain dicts (preloaded from the shared fixtures) so tests can add or change
objects, records every request it receives, and can be told to fail the next
requests (rate limits, outages) or to answer slowly.

Run as a script to serve all three fakes until SIGINT/SIGTERM::

    python3 fake_vendors.py --hubspot-port 8071 --salesforce-port 8072 --bamboohr-port 8073
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = [
    "Answer",
    "FakeBambooHR",
    "FakeHubSpot",
    "FakeSalesforce",
    "FakeVendor",
    "Headers",
    "RecordedRequest",
    "fixtures_dir",
    "load_fixture",
    "load_json",
    "main",
]

JSON_TYPE = "application/json;charset=utf-8"


# --------------------------------------------------------------------------- fixtures


def fixtures_dir() -> Path:
    """Return the shared fixtures directory ($PS_HUB_FIXTURES or <repo>/../shared/fixtures)."""
    env = os.environ.get("PS_HUB_FIXTURES")
    if env:
        path = Path(env)
    else:
        path = (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures").resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"fixtures directory not found: {path} (set PS_HUB_FIXTURES to its location)"
        )
    return path


def load_fixture(relpath: str) -> str:
    """Return the text of a fixture file, e.g. ``load_fixture("hubspot/deal_19077001.json")``."""
    return (fixtures_dir() / relpath).read_text(encoding="utf-8")


def load_json(relpath: str) -> Any:
    """Return a JSON fixture, parsed."""
    return json.loads(load_fixture(relpath))


# --------------------------------------------------------------------------- plumbing


class Headers(dict[str, str]):
    """A dict of HTTP headers with case-insensitive keys (stored lower-cased)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((key.lower(), value) for key, value in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    """One request received by a fake.

    ``query`` maps each parameter to its value (repeated parameters joined by
    commas); ``body`` is the parsed JSON body, or the raw text when it is not
    JSON; ``text`` is always the raw text.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: Any
    text: str


@dataclass
class Answer:
    """A response: dict/list bodies are sent as JSON, str/bytes as is, None as no body."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


Route = tuple[str, re.Pattern[str], str]


def _routes(*specs: tuple[str, str, str]) -> tuple[Route, ...]:
    """Compile (method, path regex, handler method name) triples."""
    return tuple((method, re.compile(pattern), name) for method, pattern, name in specs)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the vendor that owns the server."""

    server: _Server
    timeout = 30

    def log_message(self, *args: Any) -> None:
        """Stay quiet."""

    def _serve(self) -> None:
        answer = self.server.vendor._handle(self)
        if answer.body is None:
            payload = b""
        elif isinstance(answer.body, bytes):
            payload = answer.body
        elif isinstance(answer.body, str):
            payload = answer.body.encode("utf-8")
        else:
            payload = json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], vendor: FakeVendor) -> None:
        self.vendor = vendor
        super().__init__(address, _Handler)


def _hs_now() -> str:
    """Now in HubSpot's timestamp format (2026-11-20T10:00:00.000Z)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- base


class FakeVendor:
    """A fake vendor API served by a ThreadingHTTPServer on 127.0.0.1.

    Subclasses declare ``routes`` and implement ``_load_defaults``; they may
    override ``_authenticate``, ``_decorate``, ``_on_request`` and
    ``_failure_defaults``.
    """

    routes: ClassVar[tuple[Route, ...]] = ()
    default_failure_status: ClassVar[int] = 503

    def __init__(self, *, port: int = 0, latency: float = 0.0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._failures: deque[Answer] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # lifecycle

    def start(self) -> Self:
        """Bind (the same port again after a stop) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the fake must have been started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    # test controls

    def reset(self) -> None:
        """Forget recorded requests and pending failures, restore the default data."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._load_defaults()

    def fail_next(
        self,
        n: int = 1,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (vendor default) and its usual body."""
        status = status or self.default_failure_status
        default_body, default_headers = self._failure_defaults(status)
        answer_headers = {**default_headers, **(headers or {})}
        with self._lock:
            for _ in range(n):
                self._failures.append(
                    Answer(status, default_body if body is None else body, dict(answer_headers))
                )

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and path prefix."""
        with self._lock:
            return [
                req
                for req in self.requests
                if (method is None or req.method == method.upper())
                and req.path.startswith(path_prefix)
            ]

    # hooks

    def _load_defaults(self) -> None:
        """(Re)build the vendor's data dicts and counters."""

    def _authenticate(self, req: RecordedRequest) -> Answer | None:
        """Return an error answer when the request is not authorised."""
        return None

    def _decorate(self, answer: Answer) -> None:
        """Add vendor headers to every answer."""

    def _on_request(self) -> None:
        """Count a request (called under the lock)."""

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        """Default body and headers of a forced failure."""
        return {"status": "error", "message": HTTPStatus(status).phrase}, {}

    # dispatch

    def _handle(self, handler: BaseHTTPRequestHandler) -> Answer:
        length = int(handler.headers.get("Content-Length") or 0)
        text = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body: Any = json.loads(text) if text else ""
        except ValueError:
            body = text
        split = urlsplit(handler.path)
        query: dict[str, str] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        req = RecordedRequest(
            method=handler.command,
            path=unquote(split.path),
            query=query,
            headers=Headers(handler.headers.items()),
            body=body,
            text=text,
        )
        with self._lock:
            self.requests.append(req)
            self._on_request()
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            answer = self._failures.popleft() if self._failures else None
            if answer is None:
                answer = self._authenticate(req) or self._route(req)
            self._decorate(answer)
        return answer

    def _route(self, req: RecordedRequest) -> Answer:
        for method, pattern, name in self.routes:
            match = pattern.fullmatch(req.path)
            if match and method == req.method:
                handler: Callable[..., Answer] = getattr(self, name)
                return handler(req, *match.groups())
        return Answer(404, {"message": f"{type(self).__name__} serves no {req.method} {req.path}"})


# --------------------------------------------------------------------------- HubSpot


def _hs_value(value: Any) -> str:
    """HubSpot stores every property as a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_HS_OBJECTS = "(deals|companies|contacts|line_items)"
_HS_SINGULAR = {
    "deals": "DEAL",
    "companies": "COMPANY",
    "contacts": "CONTACT",
    "line_items": "LINE_ITEM",
}


class FakeHubSpot(FakeVendor):
    """HubSpot CRM v3: deals, companies, contacts and line items.

    ``token``: when set, ``Authorization: Bearer <token>`` must match it; when
    None any bearer token is accepted (but one is required).
    """

    default_failure_status = 429
    RATE_INTERVAL_MS = 10_000
    RATE_MAX = 190
    RATE_SECONDLY = 19
    RATE_DAILY = 1_000_000

    routes = _routes(
        ("GET", rf"/crm/v3/objects/{_HS_OBJECTS}/([^/]+)", "_get_object"),
        ("PATCH", rf"/crm/v3/objects/{_HS_OBJECTS}/([^/]+)", "_patch_object"),
        ("POST", rf"/crm/v3/objects/{_HS_OBJECTS}/batch/read", "_batch_read"),
        ("POST", rf"/crm/v3/objects/{_HS_OBJECTS}/batch/update", "_batch_update"),
    )

    def __init__(
        self,
        token: str | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        super().__init__(port=port, latency=latency, host=host)

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
        self._recent: deque[float] = deque()
        self._daily_used = 0

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
        ``quantity``, ``price``, ``billing_model``...), each with an optional
        ``id`` (default ``<deal_id>NNN``). Unknown companies and contacts are
        created with ``add_company``/``add_contact``; None leaves the
        association out. Properties default to the fixture deal's, with
        ``amount`` the sum of quantity x price.
        """
        deal_id = str(deal_id)
        items = []
        total = Decimal(0)
        for index, spec in enumerate(line_items, start=1):
            props = dict(spec)
            item_id = str(props.pop("id", f"{deal_id}{index:03d}"))
            total += Decimal(str(props.get("quantity", 1))) * Decimal(str(props.get("price", 0)))
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

    # hooks

    def _on_request(self) -> None:
        now = time.monotonic()
        self._recent.append(now)
        while self._recent and self._recent[0] < now - self.RATE_INTERVAL_MS / 1000:
            self._recent.popleft()
        self._daily_used += 1

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

    def _decorate(self, answer: Answer) -> None:
        if answer.status == 429:
            remaining = secondly_remaining = 0
        elif 200 <= answer.status < 300:
            now = time.monotonic()
            last_second = sum(1 for stamp in self._recent if stamp >= now - 1)
            remaining = max(0, self.RATE_MAX - len(self._recent))
            secondly_remaining = max(0, self.RATE_SECONDLY - last_second)
        else:
            return
        prefix = "X-HubSpot-RateLimit-"
        for name, value in {
            "Interval-Milliseconds": self.RATE_INTERVAL_MS,
            "Max": self.RATE_MAX,
            "Remaining": remaining,
            "Secondly": self.RATE_SECONDLY,
            "Secondly-Remaining": secondly_remaining,
            "Daily": self.RATE_DAILY,
            "Daily-Remaining": max(0, self.RATE_DAILY - self._daily_used),
        }.items():
            answer.headers.setdefault(prefix + name, str(value))

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        if status == 429:
            return load_json("hubspot/rate_limited_429.json"), {}
        return super()._failure_defaults(status)

    # endpoints

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


# --------------------------------------------------------------------------- Salesforce


_SF_DATA = r"/services/data/v\d+\.\d+"
_SF_LINE_ITEMS_SOQL = re.compile(
    r"\bFROM\s+OpportunityLineItem\s+WHERE\s+OpportunityId\s*=\s*'([^']+)'", re.IGNORECASE
)
_SF_OPPORTUNITY_URL = re.compile(_SF_DATA + r"/sobjects/Opportunity/([^/?]+)")
_SF_NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSD = "http://www.w3.org/2001/XMLSchema"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_OM_NS = "http://soap.sforce.com/2005/09/outbound"
_SF_NS = "urn:sobject.enterprise.soap.sforce.com"
# (dict key, sObject field, default) in the fixture's order; None defaults mean "today/now".
_OM_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("opportunity_id", "Id", ""),
    ("account_id", "AccountId", ""),
    ("amount", "Amount", 0),
    ("close_date", "CloseDate", None),
    ("currency", "CurrencyIsoCode", "USD"),
    ("name", "Name", ""),
    ("stage", "StageName", "Closed Won"),
    ("is_won", "IsWon", True),
    ("billing_model", "Billing_Model__c", "Mixed"),
    ("po_number", "PO_Number__c", ""),
    ("legal_entity", "Legal_Entity__c", "PS Consulting Inc."),
    ("last_modified_date", "LastModifiedDate", None),
)


def _sf_id(prefix: str) -> str:
    """A random 18-character Salesforce-style id with the given 3-character key prefix."""
    return prefix + secrets.token_hex(8)[:15].upper()


def _om_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(float(value))
    return str(value)


class FakeSalesforce(FakeVendor):
    """Salesforce REST (v62.0) with the OAuth2 client-credentials flow.

    ``client_id``/``client_secret``: when set, the token endpoint checks them.
    Every other endpoint needs ``Authorization: Bearer <token issued here>``.
    """

    default_failure_status = 403
    API_LIMIT = 15000
    DEFAULT_ORG_ID = "00D5e000001AbCdEAK"

    routes = _routes(
        ("POST", r"/services/oauth2/token", "_token"),
        ("GET", _SF_DATA + r"/sobjects/Account/([^/]+)", "_get_account"),
        ("GET", _SF_DATA + r"/query/?", "_query"),
        ("PATCH", _SF_DATA + r"/sobjects/Opportunity/([^/]+)", "_patch_opportunity"),
        ("POST", _SF_DATA + r"/composite/?", "_composite"),
    )

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        org_id: str = DEFAULT_ORG_ID,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.org_id = org_id
        super().__init__(port=port, latency=latency, host=host)

    # data

    def _load_defaults(self) -> None:
        account = load_json("salesforce/account_0015e00000QrStUAAV.json")
        self.accounts: dict[str, dict[str, Any]] = {account["Id"]: account}
        self.opportunity_line_items: dict[str, list[dict[str, Any]]] = {
            "0065e00000GhIjKAAV": load_json("salesforce/opportunity_line_items_query.json")[
                "records"
            ]
        }
        self.opportunities: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.api_usage = 0

    def issue_token(self) -> str:
        """Issue an access token directly (as the token endpoint would)."""
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self.tokens.add(token)
        return token

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (to test re-authentication on 401)."""
        with self._lock:
            self.tokens.clear()

    def add_account(
        self, account_id: str, name: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Store an Account in the fixture's shape and return it."""
        record = {
            "attributes": {
                "type": "Account",
                "url": f"/services/data/v62.0/sobjects/Account/{account_id}",
            },
            "Id": account_id,
            "Name": name or f"Account {account_id}",
            "BillingCountry": "United States",
            "CurrencyIsoCode": "USD",
            "LastModifiedDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            **fields,
        }
        with self._lock:
            self.accounts[account_id] = record
        return record

    def add_opportunity(
        self, opp_id: str, account_id: str, line_items: list[dict[str, Any]], **fields: Any
    ) -> dict[str, Any]:
        """Store an Opportunity and its OpportunityLineItem records; return the opportunity.

        ``line_items`` hold OpportunityLineItem fields (``ProductCode``,
        ``Name``, ``Quantity``, ``UnitPrice``, ``Billing_Model__c``...);
        ``Id``, ``TotalPrice`` and ``Milestones__c`` are filled in when
        missing. An unknown account is created with ``add_account``.
        """
        records = []
        for spec in line_items:
            item_id = spec.get("Id") or _sf_id("00k")
            quantity = float(spec.get("Quantity", 1.0))
            unit_price = float(spec.get("UnitPrice", 0.0))
            records.append(
                {
                    "attributes": {
                        "type": "OpportunityLineItem",
                        "url": f"/services/data/v62.0/sobjects/OpportunityLineItem/{item_id}",
                    },
                    "Id": item_id,
                    "Quantity": quantity,
                    "UnitPrice": unit_price,
                    "TotalPrice": quantity * unit_price,
                    "Milestones__c": None,
                    **{key: value for key, value in spec.items() if key != "Id"},
                }
            )
        opportunity = {
            "attributes": {
                "type": "Opportunity",
                "url": f"/services/data/v62.0/sobjects/Opportunity/{opp_id}",
            },
            "Id": opp_id,
            "AccountId": account_id,
            "Amount": sum(record["TotalPrice"] for record in records),
            "StageName": "Closed Won",
            "IsWon": True,
            **fields,
        }
        with self._lock:
            if account_id not in self.accounts:
                self.add_account(account_id)
            self.opportunity_line_items[opp_id] = records
            self.opportunities[opp_id] = opportunity
        return opportunity

    @staticmethod
    def outbound_message(
        notifications: list[dict[str, Any]], org_id: str = DEFAULT_ORG_ID
    ) -> bytes:
        """Build an Outbound Message SOAP envelope shaped like the fixture.

        One ``Notification`` per dict, with keys ``notification_id`` (default
        random), ``opportunity_id``, ``account_id``, ``amount``, ``close_date``
        (default today), ``currency`` ("USD"), ``name``, ``stage`` ("Closed
        Won"), ``is_won`` (True), ``billing_model`` ("Mixed"), ``po_number``,
        ``legal_entity`` ("PS Consulting Inc."), ``last_modified_date``
        (default now). A None value is sent as ``xsi:nil``.
        """
        known = {"notification_id"} | {key for key, _, _ in _OM_FIELDS}
        now = datetime.now(UTC)
        parts = []
        for notification in notifications:
            unknown = set(notification) - known
            if unknown:
                raise ValueError(f"unknown notification keys: {sorted(unknown)}")
            defaults = {
                "close_date": now.strftime("%Y-%m-%d"),
                "last_modified_date": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
            notification_id = notification.get("notification_id") or _sf_id("04l")
            lines = [
                "   <Notification>",
                f"    <Id>{escape(str(notification_id))}</Id>",
                f'    <sObject xsi:type="sf:Opportunity" xmlns:sf="{_SF_NS}">',
            ]
            for key, name, default in _OM_FIELDS:
                value = notification.get(key, defaults.get(key, default))
                if value is None:
                    lines.append(f'     <sf:{name} xsi:nil="true"/>')
                else:
                    lines.append(f"     <sf:{name}>{escape(_om_value(value))}</sf:{name}>")
            lines += ["    </sObject>", "   </Notification>"]
            parts.append("\n".join(lines))
        soap_url = f"https://psconsulting.my.salesforce.com/services/Soap/%s/62.0/{org_id[:15]}"
        envelope = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}" xmlns:xsd="{_XSD}" xmlns:xsi="{_XSI}">',
            " <soapenv:Body>",
            f'  <notifications xmlns="{_OM_NS}">',
            f"   <OrganizationId>{escape(org_id)}</OrganizationId>",
            "   <ActionId>04k5e0000008OmAAAU</ActionId>",
            '   <SessionId xsi:nil="true"/>',
            f"   <EnterpriseUrl>{escape(soap_url % 'c')}</EnterpriseUrl>",
            f"   <PartnerUrl>{escape(soap_url % 'u')}</PartnerUrl>",
            *parts,
            "  </notifications>",
            " </soapenv:Body>",
            "</soapenv:Envelope>",
            "",
        ]
        return "\n".join(envelope).encode("utf-8")

    # hooks

    def _on_request(self) -> None:
        self.api_usage += 1

    def _authenticate(self, req: RecordedRequest) -> Answer | None:
        if req.path == "/services/oauth2/token":
            return None
        scheme, _, token = req.headers.get("Authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "oauth") and token in self.tokens:
            return None
        return Answer(
            401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        )

    def _decorate(self, answer: Answer) -> None:
        answer.headers.setdefault(
            "Sforce-Limit-Info", f"api-usage={self.api_usage}/{self.API_LIMIT}"
        )

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        if status == 403:
            return load_json("salesforce/request_limit_exceeded_403.json"), {}
        phrase = HTTPStatus(status).phrase
        return [{"errorCode": phrase.upper().replace(" ", "_"), "message": phrase}], {}

    # endpoints

    def _token(self, req: RecordedRequest) -> Answer:
        form = dict(parse_qsl(req.text))
        if form.get("grant_type") != "client_credentials":
            return Answer(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        if self.client_id is not None and form.get("client_id") != self.client_id:
            return Answer(
                400,
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            )
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return Answer(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        issued_at = str(int(time.time() * 1000))
        identity = f"{self.base_url}/id/{self.org_id}/0055e000001XyZwAAK"
        key = (self.client_secret or "fake-secret").encode("utf-8")
        signature = hmac.new(key, (identity + issued_at).encode("utf-8"), hashlib.sha256).digest()
        return Answer(
            200,
            {
                "access_token": self.issue_token(),
                "instance_url": self.base_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": base64.b64encode(signature).decode("ascii"),
                "scope": "api",
            },
        )

    def _get_account(self, req: RecordedRequest, account_id: str) -> Answer:
        account = self.accounts.get(account_id)
        if account is None:
            return Answer(404, _SF_NOT_FOUND)
        return Answer(200, copy.deepcopy(account))

    def _query(self, req: RecordedRequest) -> Answer:
        soql = req.query.get("q", "")
        match = _SF_LINE_ITEMS_SOQL.search(soql)
        if not soql.lstrip().upper().startswith("SELECT ") or match is None:
            return Answer(
                400,
                [
                    {
                        "errorCode": "MALFORMED_QUERY",
                        "message": "FakeSalesforce only answers SELECT ... FROM "
                        f"OpportunityLineItem WHERE OpportunityId = '<id>', not: {soql}",
                    }
                ],
            )
        records = copy.deepcopy(self.opportunity_line_items.get(match.group(1), []))
        return Answer(200, {"totalSize": len(records), "done": True, "records": records})

    def _store_opportunity(self, opp_id: str, fields: dict[str, Any]) -> None:
        opportunity = self.opportunities.setdefault(
            opp_id,
            {
                "attributes": {
                    "type": "Opportunity",
                    "url": f"/services/data/v62.0/sobjects/Opportunity/{opp_id}",
                },
                "Id": opp_id,
            },
        )
        opportunity.update(fields)

    def _patch_opportunity(self, req: RecordedRequest, opp_id: str) -> Answer:
        if not isinstance(req.body, dict):
            return Answer(
                400, [{"errorCode": "JSON_PARSER_ERROR", "message": "expected a JSON object"}]
            )
        self._store_opportunity(opp_id, req.body)
        return Answer(204)

    def _composite(self, req: RecordedRequest) -> Answer:
        subrequests = req.body.get("compositeRequest") if isinstance(req.body, dict) else None
        if not isinstance(subrequests, list):
            return Answer(
                400,
                [{"errorCode": "JSON_PARSER_ERROR", "message": "expected compositeRequest list"}],
            )
        responses = []
        for sub in subrequests:
            match = _SF_OPPORTUNITY_URL.fullmatch(str(sub.get("url", "")))
            if sub.get("method") == "PATCH" and match and isinstance(sub.get("body"), dict):
                self._store_opportunity(match.group(1), sub["body"])
                status, body = 204, None
            else:
                status = 400
                body = [
                    {
                        "errorCode": "NOT_SUPPORTED",
                        "message": "FakeSalesforce composite supports only PATCH "
                        "sobjects/Opportunity/{id} with a body",
                    }
                ]
            responses.append(
                {
                    "body": body,
                    "httpHeaders": {},
                    "httpStatusCode": status,
                    "referenceId": sub.get("referenceId"),
                }
            )
        return Answer(200, {"compositeResponse": responses})


# --------------------------------------------------------------------------- BambooHR


class FakeBambooHR(FakeVendor):
    """BambooHR employees API (``/api/v1/...`` and ``/api/gateway.php/{company}/v1/...``).

    ``api_key``: when set, HTTP basic auth with the key as username is required.
    """

    default_failure_status = 429

    routes = _routes(
        ("GET", r"/api/v1/employees/([^/]+)", "_get_employee"),
        ("GET", r"/api/gateway\.php/[^/]+/v1/employees/([^/]+)", "_get_employee"),
    )

    def __init__(
        self,
        api_key: str | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        super().__init__(port=port, latency=latency, host=host)

    def _load_defaults(self) -> None:
        self.employees: dict[str, dict[str, Any]] = {
            employee["id"]: employee
            for employee in (
                load_json("bamboohr/employee_1042.json"),
                load_json("bamboohr/employee_1207.json"),
            )
        }

    def _authenticate(self, req: RecordedRequest) -> Answer | None:
        if self.api_key is None:
            return None
        scheme, _, encoded = req.headers.get("Authorization", "").partition(" ")
        try:
            username = base64.b64decode(encoded).decode("utf-8").partition(":")[0]
        except ValueError:
            username = None
        if scheme.lower() == "basic" and username == self.api_key:
            return None
        return Answer(
            401,
            headers={
                "WWW-Authenticate": 'Basic realm="BambooHR API"',
                "X-BambooHR-Error-Message": "Invalid API key",
            },
        )

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        headers = {"X-BambooHR-Error-Message": HTTPStatus(status).phrase}
        if status == 429:
            headers["Retry-After"] = "2"
        return "", headers

    def _get_employee(self, req: RecordedRequest, employee_id: str) -> Answer:
        employee = self.employees.get(employee_id)
        if employee is None:
            return Answer(404, headers={"X-BambooHR-Error-Message": "Employee not found"})
        fields = [name.strip() for name in req.query.get("fields", "").split(",") if name.strip()]
        if not fields:
            return Answer(200, copy.deepcopy(employee))
        answer = {"id": employee["id"]}
        answer.update({name: copy.deepcopy(employee.get(name)) for name in fields})
        return Answer(200, answer)


# --------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> None:
    """Serve the three fakes until SIGINT/SIGTERM, printing their URLs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubspot-port", type=int, default=8071)
    parser.add_argument("--salesforce-port", type=int, default=8072)
    parser.add_argument("--bamboohr-port", type=int, default=8073)
    parser.add_argument("--hubspot-token", help="bearer token to require (default: any)")
    parser.add_argument("--salesforce-client-id", help="client id to require (default: any)")
    parser.add_argument("--salesforce-client-secret", help="secret to require (default: any)")
    parser.add_argument("--bamboohr-api-key", help="API key to require (default: any)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)

    fakes: dict[str, FakeVendor] = {
        "hubspot": FakeHubSpot(args.hubspot_token, port=args.hubspot_port, latency=args.latency),
        "salesforce": FakeSalesforce(
            args.salesforce_client_id,
            args.salesforce_client_secret,
            port=args.salesforce_port,
            latency=args.latency,
        ),
        "bamboohr": FakeBambooHR(
            args.bamboohr_api_key, port=args.bamboohr_port, latency=args.latency
        ),
    }
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for name, fake in fakes.items():
            fake.start()
            print(f"{name}: {fake.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for fake in fakes.values():
            fake.stop()


if __name__ == "__main__":
    main()
