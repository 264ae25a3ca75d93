"""Fake Salesforce REST API with OAuth2 client credentials."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from .base import Answer, FakeVendor, RecordedRequest, _routes
from .fixtures import load_json

# --------------------------------------------------------------------------- Salesforce


_SF_DATA = r"/services/data/v\d+\.\d+"
_SF_DATA_VERSION = r"/services/data/(v\d+\.\d+)"
_SF_LINE_ITEMS_SOQL = re.compile(
    r"\bFROM\s+OpportunityLineItem\s+WHERE\s+OpportunityId\s*=\s*'([^']+)'", re.IGNORECASE
)
_SF_OPPORTUNITY_URL = re.compile(_SF_DATA + r"/sobjects/(Opportunity|Account)/([^/?]+)")
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

    API limits, as Salesforce documents them: every answer carries
    ``Sforce-Limit-Info: api-usage=N/M`` (the organization's calls of the rolling 24 hours,
    ``api_usage``, and its allowance ``api_limit``); once the allowance is spent, API calls
    get 403 ``[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit
    exceeded."}]``. ``GET /services/data/vXX.X/limits`` reports ``DailyApiRequests``.
    ``fail_next(n)`` forces the 403 (its default status) for the next ``n`` requests.
    """

    default_failure_status = 403
    API_LIMIT = 15000
    # Salesforce answers a query with up to 2,000 records and a nextRecordsUrl to the rest
    QUERY_BATCH_SIZE = 2000
    DEFAULT_ORG_ID = "00D5e000001AbCdEAK"

    routes = _routes(
        ("POST", r"/services/oauth2/token", "_token"),
        ("GET", _SF_DATA + r"/sobjects/Account/([^/]+)", "_get_account"),
        ("GET", _SF_DATA_VERSION + r"/query/?", "_query"),
        ("GET", _SF_DATA_VERSION + r"/query/(01g[A-Za-z0-9]{15})-(\d+)", "_query_more"),
        ("PATCH", _SF_DATA + r"/sobjects/(Opportunity|Account)/([^/]+)", "_patch_record"),
        ("POST", _SF_DATA + r"/composite/?", "_composite"),
        ("GET", _SF_DATA + r"/sobjects/Opportunity/([^/]+)", "_get_opportunity"),
        ("GET", _SF_DATA + r"/limits/?", "_limits"),
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
        api_limit: int = API_LIMIT,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.org_id = org_id
        self.api_limit = api_limit
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
        opportunity = load_json("salesforce/opportunity_0065e00000GhIjKAAV.json")
        self.opportunities: dict[str, dict[str, Any]] = {opportunity["Id"]: opportunity}
        self.tokens: set[str] = set()
        self.api_usage = 0
        self.query_batch_size = self.QUERY_BATCH_SIZE
        # query locator -> the records of a query answered in several batches
        self._cursors: dict[str, list[dict[str, Any]]] = {}

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
        ``Name``, ``Quantity``, ``UnitPrice``, ``Discount`` (a percentage),
        ``Billing_Model__c``...); ``Id``, ``Subtotal``, ``TotalPrice`` and
        ``Milestones__c`` are filled in when missing, as Salesforce computes
        them: Subtotal = Quantity x UnitPrice, TotalPrice = Subtotal less
        Discount, rounded to the cent. An unknown account is created with
        ``add_account``.
        """
        records = []
        for spec in line_items:
            item_id = spec.get("Id") or _sf_id("00k")
            quantity = float(spec.get("Quantity", 1.0))
            unit_price = spec.get("UnitPrice", 0.0)
            discount = spec.get("Discount")
            subtotal = Decimal(str(quantity)) * Decimal(str(unit_price or 0))
            total = subtotal * (1 - Decimal(str(discount or 0)) / 100)
            records.append(
                {
                    "attributes": {
                        "type": "OpportunityLineItem",
                        "url": f"/services/data/v62.0/sobjects/OpportunityLineItem/{item_id}",
                    },
                    "Id": item_id,
                    "Quantity": quantity,
                    "UnitPrice": None if unit_price is None else float(unit_price),
                    "Discount": discount,
                    "Subtotal": float(subtotal.quantize(Decimal("0.01"), ROUND_HALF_UP)),
                    "TotalPrice": float(total.quantize(Decimal("0.01"), ROUND_HALF_UP)),
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
            "Amount": float(sum(Decimal(str(record["TotalPrice"])) for record in records)),
            "CurrencyIsoCode": "USD",
            "StageName": "Closed Won",
            "IsClosed": True,
            "IsWon": True,
            "Legal_Entity__c": "PS Consulting Inc.",
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

    def _throttle(self, req: RecordedRequest) -> Answer | None:
        if req.path == "/services/oauth2/token" or self.api_usage <= self.api_limit:
            return None
        self.api_usage -= 1  # a refused call is not counted
        return Answer(403, load_json("salesforce/request_limit_exceeded_403.json"))

    def _decorate(self, answer: Answer, req: RecordedRequest) -> None:
        answer.headers.setdefault(
            "Sforce-Limit-Info", f"api-usage={self.api_usage}/{self.api_limit}"
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

    def _limits(self, req: RecordedRequest) -> Answer:
        """GET limits: the organization's allowances; the fake counts only DailyApiRequests."""
        return Answer(200, {
            "DailyApiRequests": {"Max": self.api_limit, "Remaining": max(self.api_limit - self.api_usage, 0)},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        })

    def _batch_size(self, req: RecordedRequest) -> int:
        """The query batch size: ``query_batch_size``, or smaller when the client asks with
        ``Sforce-Query-Options: batchSize=N`` (Salesforce takes 200 to 2,000)."""
        size = self.query_batch_size
        options = dict(
            part.strip().partition("=")[::2]
            for part in req.headers.get("Sforce-Query-Options", "").split(",")
        )
        if options.get("batchSize", "").isdigit():
            size = min(size, max(200, min(2000, int(options["batchSize"]))))
        return max(1, size)

    def _query_page(
        self, version: str, locator: str, records: list[dict[str, Any]], offset: int, size: int
    ) -> Answer:
        """One batch of a query's records, with ``nextRecordsUrl`` when more remain."""
        end = offset + size
        body: dict[str, Any] = {
            "totalSize": len(records),
            "done": end >= len(records),
            "records": copy.deepcopy(records[offset:end]),
        }
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
        return Answer(200, body)

    def _query_more(self, req: RecordedRequest, version: str, locator: str, offset: str) -> Answer:
        records = self._cursors.get(locator)
        if records is None or int(offset) >= len(records):
            return Answer(
                400,
                [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}],
            )
        return self._query_page(version, locator, records, int(offset), self._batch_size(req))

    def _get_account(self, req: RecordedRequest, account_id: str) -> Answer:
        account = self.accounts.get(account_id)
        if account is None:
            return Answer(404, _SF_NOT_FOUND)
        return Answer(200, copy.deepcopy(account))

    def _get_opportunity(self, req: RecordedRequest, opp_id: str) -> Answer:
        """GET sobjects/Opportunity/{id}: every field, or those of ``?fields=``."""
        opportunity = self.opportunities.get(opp_id)
        if opportunity is None:
            return Answer(404, _SF_NOT_FOUND)
        record = copy.deepcopy(opportunity)
        if req.query.get("fields"):
            wanted = {name.strip() for name in req.query["fields"].split(",")} | {"attributes"}
            unknown = wanted - set(record) - {"attributes"}
            if unknown:
                return Answer(400, [{"errorCode": "INVALID_FIELD",
                                     "message": f"No such column '{sorted(unknown)[0]}' on entity 'Opportunity'."}])
            record = {key: value for key, value in record.items() if key in wanted}
        return Answer(200, record)

    def _query(self, req: RecordedRequest, version: str) -> Answer:
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
        size = self._batch_size(req)
        locator = ""
        if len(records) > size:
            locator = _sf_id("01g")
            self._cursors[locator] = records
        return self._query_page(version, locator, records, 0, size)

    def _update_record(self, sobject: str, record_id: str, fields: Any) -> tuple[int, Any]:
        """PATCH sobjects/{sobject}/{id} as Salesforce answers it: 204 without a body once
        updated; 404 NOT_FOUND for an id it does not have (a PATCH updates, it never creates);
        400 for a body that is not an object or that sets the Id."""
        if not isinstance(fields, dict):
            return 400, [{"errorCode": "JSON_PARSER_ERROR", "message": "expected a JSON object"}]
        store = self.opportunities if sobject == "Opportunity" else self.accounts
        record = store.get(record_id)
        if record is None:
            return 404, _SF_NOT_FOUND
        if "Id" in fields:
            return 400, [{"errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                          "message": "Unable to create/update fields: Id.", "fields": ["Id"]}]
        record.update(fields)
        return 204, None

    def _patch_record(self, req: RecordedRequest, sobject: str, record_id: str) -> Answer:
        status, body = self._update_record(sobject, record_id, req.body)
        return Answer(status, body)

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
            if sub.get("method") == "PATCH" and match:
                status, body = self._update_record(match.group(1), match.group(2), sub.get("body"))
            else:
                status = 400
                body = [
                    {
                        "errorCode": "NOT_SUPPORTED",
                        "message": "FakeSalesforce composite supports only PATCH "
                        "sobjects/Opportunity/{id} and sobjects/Account/{id}",
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


