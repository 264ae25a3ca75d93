import email.utils
import json
import logging
import math
import secrets
import threading
import time
from datetime import UTC, datetime

import requests

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, config
from odoo.tools.query import Query

from ..services import crypto, parsers, signatures
from ..services.errors import OutOfTime, PermanentError, TransientError

_logger = logging.getLogger(__name__)

SYSTEMS = [
    ("hubspot", "HubSpot"),
    ("salesforce", "Salesforce"),
    ("stripe", "Stripe"),
    ("bamboohr", "BambooHR"),
    ("standard", "Standard Webhooks sender"),
]
# stored ciphertext field -> write-only field shown in the form
SECRET_FIELDS = {
    "auth_secret_enc": "auth_secret",
    "signing_secret_enc": "signing_secret",
    "signing_secret_previous_enc": "signing_secret_previous",
}
INBOUND_FIELDS = [
    "system", "company_id", "max_body_bytes", "signature_tolerance", "salesforce_org_id",
    "signing_secret_enc", "signing_secret_previous_enc", "public_base_url", "hubspot_portal_id",
]
INBOUND_PATH = "/ps_hub/in/"
# OAuth2 access tokens live in memory only, per process: never in the database.
_TOKENS: dict[tuple[str, int], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()
# a vendor call is not started with less time than this left in the worker's run
MIN_CALL_SECONDS = 1.0


def retry_after_seconds(headers) -> float | None:
    """When the vendor says to come back: Retry-After, else HubSpot's rate-limit window.

    Retry-After is delay-seconds or an HTTP-date (RFC 9110, 10.2.3); a date already
    passed asks for no wait.
    """
    retry_after = (headers.get("Retry-After") or "").strip()
    if retry_after.isdigit():
        return float(retry_after)
    if retry_after:
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:  # RFC 9110 dates are GMT
                when = when.replace(tzinfo=UTC)
            wait = (when - datetime.now(UTC)).total_seconds()
            return wait if wait > 0 else None
    if headers.get("X-HubSpot-RateLimit-Remaining") == "0":
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
        return int(interval) / 1000 if interval.isdigit() else None
    if headers.get("X-HubSpot-RateLimit-Secondly-Remaining") == "0":
        return 1.0
    return None


class PsHubConnector(models.Model):
    _name = "ps.hub.connector"
    _description = "Integration Connector"
    _inherit = ["mail.thread"]
    _order = "name, id"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True, tracking=True)
    system = fields.Selection(SYSTEMS, required=True, tracking=True)
    environment = fields.Selection(
        [("production", "Production"), ("sandbox", "Sandbox")],
        required=True, default="sandbox", tracking=True,
    )
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company,
    )
    base_url = fields.Char(
        "API Base URL", tracking=True,
        help="Root of the vendor's REST API, e.g. https://api.hubapi.com",
    )
    auth_type = fields.Selection(
        [
            ("none", "None"),
            ("bearer", "Bearer token / private app token"),
            ("basic", "Basic (user + password or API key)"),
            ("oauth2_client_credentials", "OAuth2 client credentials"),
        ],
        required=True, default="bearer", tracking=True,
    )
    auth_username = fields.Char(
        "Username / Client ID", tracking=True,
        help="Basic auth user (BambooHR: the API key, password 'x'), or the OAuth2 client id.",
    )
    token_url = fields.Char("OAuth2 Token URL", help="Defaults to <base URL>/services/oauth2/token")
    # ciphertexts: only the server reads them, through _hub_secret()
    auth_secret_enc = fields.Char(copy=False, groups="base.group_system")
    signing_secret_enc = fields.Char(copy=False, groups="base.group_system")
    signing_secret_previous_enc = fields.Char(copy=False, groups="base.group_system")
    # write-only fields of the form: they always read empty
    auth_secret = fields.Char(
        "API Secret", compute="_compute_secret_inputs", inverse="_inverse_auth_secret",
        help="API key, token, password or OAuth2 client secret. Write-only.",
    )
    signing_secret = fields.Char(
        "Inbound Signing Secret", compute="_compute_secret_inputs",
        inverse="_inverse_signing_secret", help="Write-only.",
    )
    signing_secret_previous = fields.Char(
        "Previous Signing Secret", compute="_compute_secret_inputs",
        inverse="_inverse_signing_secret_previous",
        help="Still accepted while the vendor rotates to the new secret. Write-only.",
    )
    has_auth_secret = fields.Boolean(compute="_compute_has_secrets")
    has_signing_secret = fields.Boolean(compute="_compute_has_secrets")
    has_signing_secret_previous = fields.Boolean(compute="_compute_has_secrets")
    salesforce_org_id = fields.Char(
        "Salesforce Organization ID", tracking=True,
        help="Outbound messages from another organization are refused.",
    )
    hubspot_portal_id = fields.Char(
        "HubSpot Portal ID", tracking=True,
        help="Events of other portals (an app delivers every portal that installed it, "
             "sandboxes included, to one URL) are dropped and counted. Empty: events of any "
             "portal are accepted.",
    )
    foreign_portal_event_count = fields.Integer(
        "Events of Other Portals", readonly=True, copy=False,
        help="HubSpot events dropped because they came from another portal than the connector's.",
    )
    public_base_url = fields.Char(
        "Public Base URL", tracking=True,
        help="The scheme and host (and path prefix) under which the vendor reaches this Odoo, "
             "e.g. https://erp.example.com. Empty: the web.base.url system parameter. HubSpot "
             "signs the URL it posts to, so behind a reverse proxy this must be the public one.",
    )
    inbound_token = fields.Char(
        copy=False, readonly=True, default=lambda self: secrets.token_urlsafe(32),
        groups="ps_integration_hub.group_hub_manager",
    )
    inbound_url = fields.Char(
        "Inbound URL", compute="_compute_inbound_url",
        groups="ps_integration_hub.group_hub_manager",
        help="Paste this URL into the vendor's webhook settings.",
    )
    timeout = fields.Integer("Timeout (s)", default=20, required=True)
    max_body_bytes = fields.Integer("Max Body Size (bytes)", default=1024 * 1024, required=True)
    signature_tolerance = fields.Integer("Timestamp Tolerance (s)", default=300, required=True)
    retry_max_attempts = fields.Integer("Max Attempts", default=8, required=True)
    retry_backoff_base = fields.Integer("Backoff Base (s)", default=30, required=True)
    retry_backoff_cap = fields.Integer("Backoff Cap (s)", default=3600, required=True)
    signature_failure_count = fields.Integer(readonly=True, copy=False)
    last_signature_failure = fields.Datetime(readonly=True, copy=False)
    event_ids = fields.One2many("ps.hub.event", "connector_id")
    event_type_activation_ids = fields.One2many(
        "ps.hub.connector.event.type", "connector_id", "Event Types",
        help="The event types of this connector's system and whether it processes them. A new "
             "sandbox connector processes only the types marked to run on sandboxes.",
    )
    event_count = fields.Integer(compute="_compute_event_stats")
    open_exception_count = fields.Integer(compute="_compute_event_stats")

    _inbound_token_unique = models.UniqueIndex("(inbound_token)")

    @api.model_create_multi
    def create(self, vals_list):
        connectors = super().create(vals_list)
        connectors._hub_activate_event_types()
        return connectors

    def write(self, vals):
        result = super().write(vals)
        if "system" in vals:
            self._hub_activate_event_types()
        return result

    def _hub_activate_event_types(self):
        """Give the connectors a setting for each event type of their system."""
        event_types = self.env["ps.hub.event.type"].sudo().with_context(active_test=False).search(
            [("system", "in", list(set(self.mapped("system"))))])
        event_types._hub_activate_on_connectors(self)
    _positive_limits = models.Constraint(
        "CHECK(timeout > 0 AND max_body_bytes > 0 AND retry_max_attempts > 0 "
        "AND retry_backoff_base >= 0 AND retry_backoff_cap >= retry_backoff_base)",
        "Timeouts, limits and attempts must be positive, and the backoff cap at least its base.",
    )

    # ------------------------------------------------------------------ secrets

    @api.model
    def _hub_keys(self) -> list[str]:
        return crypto.configured_keys(config.get(crypto.CONFIG_OPTION))

    def _compute_secret_inputs(self):
        for connector in self:
            connector.auth_secret = False
            connector.signing_secret = False
            connector.signing_secret_previous = False

    def _compute_has_secrets(self):
        for connector, connector_sudo in zip(self, self.sudo(), strict=True):
            connector.has_auth_secret = bool(connector_sudo.auth_secret_enc)
            connector.has_signing_secret = bool(connector_sudo.signing_secret_enc)
            connector.has_signing_secret_previous = bool(connector_sudo.signing_secret_previous_enc)

    def _set_secret(self, enc_field, plain):
        if not plain:
            return  # an empty write-only input means "leave unchanged"
        self._hub_check_manager()
        try:
            token = crypto.encrypt(plain, self._hub_keys())
        except crypto.SecretKeyMissing as exc:
            raise UserError(self.env._("Cannot store the secret: %s", exc)) from None
        self.sudo().write({enc_field: token})

    def _inverse_auth_secret(self):
        for connector in self:
            connector._set_secret("auth_secret_enc", connector.auth_secret)

    def _inverse_signing_secret(self):
        for connector in self:
            connector._set_secret("signing_secret_enc", connector.signing_secret)

    def _inverse_signing_secret_previous(self):
        for connector in self:
            connector._set_secret("signing_secret_previous_enc", connector.signing_secret_previous)

    def _hub_secret(self, enc_field: str) -> str | None:
        """The plain secret of ``enc_field``, for server-side use only."""
        self.ensure_one()
        token = self.sudo()[enc_field]
        if not token:
            return None
        return crypto.decrypt(token, self._hub_keys())

    def _hub_check_manager(self):
        if not self.env.user.has_group("ps_integration_hub.group_hub_manager"):
            raise AccessError(self.env._("Only Integration Managers can change connector secrets."))
        self.check_access("write")

    def action_clear_previous_secret(self):
        """End a rotation: the previous signing secret is no longer accepted."""
        self._hub_check_manager()
        self.sudo().write({"signing_secret_previous_enc": False})
        self.message_post(body=self.env._("Previous signing secret removed."))

    def action_rotate_signing_secret(self):
        """Keep the current secret as previous while the vendor switches to a new one."""
        self._hub_check_manager()
        for connector in self:
            connector_sudo = connector.sudo()
            if not connector_sudo.signing_secret_enc:
                raise UserError(self.env._("There is no signing secret to rotate."))
            connector_sudo.write({
                "signing_secret_previous_enc": connector_sudo.signing_secret_enc,
                "signing_secret_enc": False,
            })
            connector.message_post(body=self.env._(
                "Signing secret moved to 'previous': enter the new secret from the vendor."
            ))

    # ------------------------------------------------------------------ inbound

    @api.depends("inbound_token", "public_base_url")
    def _compute_inbound_url(self):
        for connector in self:
            connector.inbound_url = connector._hub_public_inbound_url(connector.inbound_token)

    def _hub_public_inbound_url(self, token: str) -> str:
        """The URL the vendor is given and posts to (and HubSpot signs), without query."""
        self.ensure_one()
        base = self.public_base_url or self.env["ir.config_parameter"].sudo().get_param(
            "web.base.url", "")  # cached: no query per delivery
        return f"{base.strip().rstrip('/')}{INBOUND_PATH}{token}"

    def action_regenerate_token(self):
        """Issue a new inbound URL; the old one answers 404 from now on."""
        self._hub_check_manager()
        for connector in self:
            connector.sudo().inbound_token = secrets.token_urlsafe(32)
            connector.message_post(body=self.env._("Inbound URL regenerated."))

    @api.depends("event_ids.state")
    def _compute_event_stats(self):
        counts = {
            (connector.id, state): count
            for connector, state, count in self.env["ps.hub.event"]._read_group(
                [("connector_id", "in", self.ids)], ["connector_id", "state"], ["__count"],
            )
        }
        for connector in self:
            connector.event_count = sum(
                c for (cid, _state), c in counts.items() if cid == connector.id
            )
            connector.open_exception_count = sum(
                counts.get((connector.id, s), 0) for s in ("exception", "dead")
            )

    @api.model
    def _hub_find_by_token(self, token: str):
        """The active connector behind an inbound URL, or an empty recordset."""
        if not token or len(token) > 128:
            return self.browse()
        # One query for what the route reads on every delivery. Built here rather than by
        # search_fetch(), whose domain parsing and optimizing cost more CPU than the query:
        # the same WHERE (token, active), and no record rule in sudo mode either.
        connectors = self.sudo()
        query = Query(connectors.env, connectors._table, connectors._table_sql)
        table = connectors._table
        query.add_where(SQL("%s = %s AND %s", connectors._field_to_sql(table, "inbound_token", query), token,
                            connectors._field_to_sql(table, "active", query)))  # flushes what they read
        query.limit = 1
        return connectors._fetch_query(query, [connectors._fields[name] for name in self._hub_inbound_fields()])

    @api.model
    def _hub_inbound_fields(self) -> list[str]:
        """The fields the inbound route reads, fetched with the connector in one query: a
        module whose system checks deliveries against a field of its own adds it here."""
        return INBOUND_FIELDS

    # --------------------------------------------------------- vendor systems
    # Every decision of the inbound route that depends on the vendor is one of the methods
    # below. The systems of SYSTEMS dispatch to the plain-Python verifiers and parsers of
    # services/. A module adds a system the way account_peppol adds its provider: it extends
    # ``system`` with selection_add (and an ondelete) and overrides the methods it needs,
    # each beginning with ``if self.system != "<its system>": return super()...`` (see
    # test_addons/ps_hub_test_vendor). The route reads nothing else of the system. These
    # methods run on the connector _hub_find_by_token fetched with _hub_inbound_fields() in one
    # query, and the route is benchmarked: they read those fields and query nothing more.

    def _hub_content_types(self) -> tuple[str, ...]:
        """The media types (lower case, without parameters) the vendor posts deliveries as."""
        return parsers.CONTENT_TYPES.get(self.system, ("application/json",))

    def _hub_content_type_ok(self, content_type: str | None) -> bool:
        """Whether a delivery's Content-Type is one the vendor sends (parameters ignored)."""
        return parsers.media_type(content_type) in self._hub_content_types()

    def _hub_signing_secrets(self) -> list[str | None]:
        """The secrets a signature may be made with: the current one, then the previous one
        while the vendor rotates (either may be None)."""
        return [self._hub_secret("signing_secret_enc"), self._hub_secret("signing_secret_previous_enc")]

    def _hub_verify_signature(self, httprequest, token: str, body: bytes) -> None:
        """Raise SignatureError unless the delivery was signed by the vendor.

        ``httprequest`` is the werkzeug request (method, URL, headers), ``token`` the inbound
        token of its URL and ``body`` its raw body. A system this method does not know is
        refused: a module that adds one must verify its deliveries here.
        """
        self.ensure_one()
        candidates = self._hub_signing_secrets()
        tolerance = self.signature_tolerance
        headers = httprequest.headers
        if self.system == "hubspot":
            # HubSpot signs the URL it was given: the public inbound URL (behind a
            # TLS-terminating proxy not the one Odoo reconstructs), query string as received;
            # then the reconstructed one (right when the proxy forwards the host and
            # proxy_mode is on)
            public = self._hub_public_inbound_url(token)
            query = httprequest.query_string.decode("latin-1")
            urls = [f"{public}?{query}" if query else public, httprequest.url]
            signatures.verify_hubspot_v3(candidates, httprequest.method, urls, body, headers,
                                         tolerance=tolerance)
        elif self.system == "stripe":
            signatures.verify_stripe(candidates, body, headers, tolerance=tolerance)
        elif self.system == "bamboohr":
            signatures.verify_bamboohr(candidates, body, headers, tolerance=tolerance)
        elif self.system == "standard":
            signatures.verify_standard(candidates, body, headers, tolerance=tolerance)
        elif self.system == "salesforce":
            # Salesforce outbound messages are not signed: the organization is checked
            # once the message is parsed (_hub_check_delivery)
            pass
        else:
            raise signatures.SignatureError(f"no signature scheme for system {self.system!r}")

    def _hub_parser(self):
        """The plain-Python parser of the vendor's deliveries: ``(body: bytes, headers) ->
        parsers.Delivery``, which turns whatever an authentic body holds into storable events
        (see services/parsers.py). A module that adds a system returns its own."""
        parser = parsers.PARSERS.get(self.system)
        if parser is None:
            raise NotImplementedError(f"no parser for system {self.system!r}: its module must override _hub_parser")
        return parser

    def _hub_parse_delivery(self, body: bytes, headers) -> parsers.Delivery:
        """Split a verified delivery into events; never raises (parsers.parse_safely)."""
        return parsers.parse_safely(self._hub_parser(), body, headers, self.system)

    def _hub_desk_reparses_payload(self) -> bool:
        """Whether a payload corrected on the exception desk is read again as a delivery in the
        vendor's format, rather than stored as the JSON given. Salesforce: the payload is what
        was read out of a SOAP message, so the correction is a message. (A malformed event's
        correction is always read as a delivery.)"""
        return self.system == "salesforce"

    def _hub_check_delivery(self, delivery: parsers.Delivery) -> int:
        """Checks that need the parsed delivery; returns the number of events dropped.

        Salesforce: a message of another organization raises SignatureError (401).
        HubSpot: events of another portal than ``hubspot_portal_id`` are dropped from the
        delivery, logged and counted on the connector, and the rest is accepted. They are
        authentic (one app, one secret, every installing portal) so a 4xx would only make
        HubSpot retry for a day what this connector will never take, and would hold back
        this portal's events sharing the batch. Events that name no portal, and malformed
        ones whose portal cannot be told, are kept. No portal id: the check is off.
        """
        self.ensure_one()
        if self.system == "salesforce":
            expected = (self.salesforce_org_id or "").strip()
            if not expected:
                raise signatures.SignatureError("no Salesforce organization configured")
            if (delivery.organization_id or "")[:15] != expected[:15]:
                # 15- and 18-character forms of one id share their first 15 characters
                raise signatures.SignatureError("OrganizationId does not match the connector")
            return 0
        portal = (self.hubspot_portal_id or "").strip() if self.system == "hubspot" else ""
        if not portal:
            return 0
        kept = [ev for ev in delivery.events if ev.portal_id in (None, portal)]
        dropped = len(delivery.events) - len(kept)
        if dropped:
            foreign = sorted({ev.portal_id for ev in delivery.events if ev.portal_id not in (None, portal)})
            delivery.events = kept
            self.env.cr.execute(SQL(
                "UPDATE ps_hub_connector SET foreign_portal_event_count = "
                "COALESCE(foreign_portal_event_count, 0) + %s WHERE id = %s", dropped, self.id,
            ))
            _logger.warning(
                "ps_hub: connector %s (portal %s) dropped %s event(s) of other HubSpot portals %s",
                self.id, portal, dropped, ", ".join(foreign[:10]),
            )
        return dropped

    def _hub_acknowledge(self, new_ids: list[int], duplicates: int, dropped: int) -> tuple[int, str, bytes]:
        """The answer to a stored delivery, as (HTTP status, Content-Type, body): JSON counts by
        default, the SOAP acknowledgement Salesforce expects (anything else makes it retry).
        ``dropped``: the events _hub_check_delivery took out of the delivery."""
        if self.system == "salesforce":
            return 200, "text/xml; charset=utf-8", parsers.SALESFORCE_ACK
        answer = {"accepted": len(new_ids), "duplicates": duplicates}
        if dropped:
            answer["other_portal"] = dropped
        return 200, "application/json", json.dumps(answer).encode()

    def _hub_count_signature_failure(self, reason: str, remote_addr: str | None) -> None:
        self.ensure_one()
        self.env.cr.execute(SQL(
            "UPDATE ps_hub_connector SET signature_failure_count = "
            "COALESCE(signature_failure_count, 0) + 1, last_signature_failure = now() "
            "AT TIME ZONE 'UTC' WHERE id = %s", self.id,
        ))
        _logger.warning(
            "ps_hub: rejected delivery for connector %s (%s) from %s: %s",
            self.id, self.system, remote_addr, reason,
        )

    # ----------------------------------------------------------------- outbound

    def _hub_url(self, path: str) -> str:
        if not self.base_url:
            raise PermanentError(
                self.env._("Connector %s has no API base URL.", self.display_name),
                reason="configuration",
            )
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _hub_oauth_token(self, refresh: bool = False) -> str:
        key = (self.env.cr.dbname, self.id)
        with _TOKENS_LOCK:
            cached = _TOKENS.get(key)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        url = self.token_url or self._hub_url("/services/oauth2/token")
        data = {
            "grant_type": "client_credentials",
            "client_id": self.auth_username or "",
            "client_secret": self._hub_secret("auth_secret_enc") or "",
        }
        timeout = self._hub_call_timeout(self.timeout, "token request")
        try:
            response = requests.post(url, data=data, timeout=timeout)
        except requests.Timeout:
            if timeout < self.timeout:
                raise OutOfTime("token request: cut by the end of the worker's run") from None
            raise TransientError("token request failed: Timeout", reason="network") from None
        except requests.RequestException as exc:
            raise TransientError(f"token request failed: {exc.__class__.__name__}", reason="network") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(
                f"token request: HTTP {response.status_code}", reason="remote_unavailable",
                retry_after=retry_after_seconds(response.headers),
            )
        if response.status_code != 200:
            raise PermanentError(
                self.env._("The OAuth2 token request was refused (HTTP %s): check the "
                           "client id and secret of connector %s.",
                           response.status_code, self.display_name),
                reason="authentication",
            )
        token = response.json()["access_token"]
        with _TOKENS_LOCK:
            _TOKENS[key] = (token, time.monotonic() + 1800)
        return token

    def _hub_auth(self, kwargs: dict, refresh: bool = False) -> None:
        headers = kwargs.setdefault("headers", {})
        if self.auth_type == "bearer":
            headers["Authorization"] = f"Bearer {self._hub_secret('auth_secret_enc') or ''}"
        elif self.auth_type == "basic":
            kwargs["auth"] = (self.auth_username or "", self._hub_secret("auth_secret_enc") or "x")
        elif self.auth_type == "oauth2_client_credentials":
            headers["Authorization"] = f"Bearer {self._hub_oauth_token(refresh=refresh)}"

    def _hub_call_timeout(self, timeout: float, what: str) -> float:
        """``timeout``, cut so that the call ends before the worker's run must (see
        services/budget.py); OutOfTime when too little of the run is left to start it."""
        left = self.env.context.get("ps_hub_call_until", math.inf) - time.monotonic()
        if left < MIN_CALL_SECONDS:
            raise OutOfTime(f"{what}: not started, the worker's run is at its end")
        return min(timeout, left)

    def _hub_request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call the vendor's API with the connector's auth and timeout.

        Rate limits, 5xx and network errors raise TransientError (the event is retried
        with backoff); refused credentials (401, also after a fresh OAuth2 token) and other
        refusals raise PermanentError. A call that the end of the worker's run would cut
        raises OutOfTime: the event waits for the next run, uncharged.
        """
        self.ensure_one()
        url = self._hub_url(path)
        timeout = kwargs.pop("timeout", self.timeout)
        for attempt in (1, 2):
            self._hub_auth(kwargs, refresh=attempt == 2)
            call_timeout = self._hub_call_timeout(timeout, f"{method} {path}")
            try:
                response = requests.request(method, url, timeout=call_timeout, **kwargs)
            except requests.Timeout:
                if call_timeout < timeout:
                    raise OutOfTime(f"{method} {path}: cut by the end of the worker's run") from None
                raise TransientError(f"{method} {path}: Timeout", reason="network") from None
            except requests.RequestException as exc:
                raise TransientError(
                    f"{method} {path}: {exc.__class__.__name__}", reason="network",
                ) from None
            if (response.status_code == 401 and attempt == 1
                    and self.auth_type == "oauth2_client_credentials"):
                continue  # expired or revoked token: fetch a new one once
            break
        status = response.status_code
        if status < 300:
            return response
        if status == 401:
            raise PermanentError(
                self.env._("%(vendor)s refused the credentials of connector %(connector)s (HTTP 401 on "
                           "%(method)s %(path)s): check its API secret, then retry.",
                           vendor=self.system, connector=self.display_name, method=method, path=path),
                reason="authentication",
            )
        if status == 429 or status >= 500 or (
            status == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text
        ):
            raise TransientError(
                f"{method} {path}: HTTP {status}", reason="rate_limited" if status in (403, 429)
                else "remote_unavailable",
                retry_after=retry_after_seconds(response.headers),
            )
        raise PermanentError(
            f"{method} {path}: HTTP {status}: {response.text[:300]}",
            reason="remote_not_found" if status == 404 else "remote_refused",
        )
