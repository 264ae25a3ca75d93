import dataclasses
import json
import logging
import math
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg2.errors
import requests

from odoo import api, fields, models, modules
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, config, ormcache
from odoo.tools.query import Query

from ..services import breaker, crypto, parsers, ratelimit, signatures
from ..services.errors import ConnectorPaused, OutOfTime, PermanentError, RateLimited, TransientError
from ..services.ratelimit import retry_after_seconds  # noqa: F401 - the name tests and modules import

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
# What this process learned of each connector's vendor since it last wrote the connector
# (services/breaker.py), per (database, connector id).
_HEALTH: dict[tuple[str, int], breaker.Health] = {}
_HEALTH_LOCK = threading.Lock()
# the quota a vendor reports is written at most this often per process (unless one is spent)
QUOTA_WRITE_SECONDS = 10.0
BREAKER_STATES = [
    (breaker.CLOSED, "Closed"),
    (breaker.OPEN, "Open"),
    (breaker.HALF_OPEN, "Probing"),
]
BREAKER_FIELDS = [
    "breaker_state", "breaker_failures", "breaker_cooldown", "breaker_opened_at", "breaker_probe_at",
    "breaker_last_error", "paused_until", "pause_reason", "quota_remaining", "quota_limit",
    "quota_window_seconds", "quota_daily_remaining", "quota_daily_limit", "quota_read_at",
]
BREAKER_ACTIVITY = "ps_integration_hub.mail_activity_type_breaker_open"


class PsHubConnector(models.Model):
    _name = "ps.hub.connector"
    _description = "Integration Connector"
    _inherit = ["mail.thread", "mail.activity.mixin"]
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
    breaker_threshold = fields.Integer(
        "Failures to Open", default=5, required=True, tracking=True,
        help="Consecutive failures of the vendor (5xx answers, timeouts, network errors) that open the "
             "circuit breaker. Rate limits and refusals of one request do not count.",
    )
    breaker_cooldown_base = fields.Integer(
        "Breaker Cooldown (s)", default=60, required=True, tracking=True,
        help="How long an opened breaker waits before a probe; doubled after each failed probe.",
    )
    breaker_cooldown_cap = fields.Integer("Breaker Cooldown Cap (s)", default=1800, required=True, tracking=True)
    breaker_state = fields.Selection(
        BREAKER_STATES, "Circuit Breaker", default=breaker.CLOSED, required=True, readonly=True, copy=False,
        help="Open: the vendor failed repeatedly; the connector's events wait, uncharged, until a probe "
             "call goes through. Probing: a probe call is under way.",
    )
    breaker_failures = fields.Integer("Consecutive Failures", readonly=True, copy=False)
    breaker_cooldown = fields.Integer("Current Cooldown (s)", readonly=True, copy=False)
    breaker_opened_at = fields.Datetime("Breaker Opened", readonly=True, copy=False)
    breaker_probe_at = fields.Datetime("Next Probe", readonly=True, copy=False)
    breaker_last_error = fields.Text("Last Vendor Failure", readonly=True, copy=False)
    paused_until = fields.Datetime(
        "Calls Paused Until", readonly=True, copy=False,
        help="The vendor asked to wait (a rate limit, a spent quota): no call before this time.",
    )
    pause_reason = fields.Char("Pause Reason", readonly=True, copy=False)
    quota_remaining = fields.Integer("Calls Left in Window", readonly=True, copy=False)
    quota_limit = fields.Integer("Calls per Window", readonly=True, copy=False)
    quota_window_seconds = fields.Float("Window (s)", readonly=True, copy=False)
    quota_daily_remaining = fields.Integer("Calls Left Today", readonly=True, copy=False)
    quota_daily_limit = fields.Integer("Calls per Day", readonly=True, copy=False)
    quota_read_at = fields.Datetime(
        "Quota Read", readonly=True, copy=False,
        help="When the vendor last reported the quota (written at most every few seconds).",
    )
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
        if not self._hub_inbound_cache_keys().isdisjoint(vals):
            # what the inbound route caches per process (_hub_find_by_token) is read again, in
            # every process: Odoo signals the cleared cache to the others at commit
            self.env.registry.clear_cache()
        return result

    @api.ondelete(at_uninstall=False)
    def _unlink_except_events(self):
        # ps_hub_event.connector_id has no foreign key (see _Many2oneWithoutForeignKey)
        used = self.browse(connector.id for connector, in self.env["ps.hub.event"].sudo()._read_group(
            [("connector_id", "in", self.ids)], ["connector_id"]))
        if used:
            raise UserError(self.env._(
                "Connectors with events cannot be deleted (%s): archive them instead, the events "
                "stay readable on the desk.", ", ".join(used.mapped("display_name"))))

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result

    @api.model
    def _hub_inbound_cache_keys(self) -> set[str]:
        """The fields whose change makes the inbound route read its connector again."""
        return {"inbound_token", "active", *self._hub_inbound_fields()}

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
    _breaker_limits = models.Constraint(
        "CHECK(breaker_threshold > 0 AND breaker_cooldown_base > 0 "
        "AND breaker_cooldown_cap >= breaker_cooldown_base)",
        "The breaker opens after at least one failure, and its cooldown cap is at least its cooldown.",
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
        """The active connector behind an inbound URL, or an empty recordset.

        The fields the route reads (_hub_inbound_fields) come from a per-process cache, cleared
        in every process when a connector changes them (write, unlink): a delivery then costs no
        query for its connector. An unknown token is not cached (a flood of made-up URLs must not
        evict the rest of Odoo's cache), it costs one query each time.
        """
        if not token or len(token) > 128:
            return self.browse()
        connectors = self.sudo()
        try:
            row = connectors._hub_inbound_row(token)
        except LookupError:
            return self.browse()
        connector = connectors.browse(row[0])
        for name, value in zip(self._hub_inbound_fields(), row[1:], strict=True):
            connectors._fields[name]._insert_cache(connector, (value,))
        return connector

    @ormcache("token")
    def _hub_inbound_row(self, token: str) -> tuple:
        """(id, *values of _hub_inbound_fields()) of the active connector of ``token``, as read
        from the database; LookupError (not cached) when there is none."""
        # Built here rather than by search_fetch(), whose domain parsing and optimizing cost more
        # CPU than the query: the same WHERE (token, active), and no record rule in sudo mode.
        connectors = self.sudo()
        query = Query(connectors.env, connectors._table, connectors._table_sql)
        table = connectors._table
        query.add_where(SQL("%s = %s AND %s", connectors._field_to_sql(table, "inbound_token", query), token,
                            connectors._field_to_sql(table, "active", query)))  # flushes what they read
        query.limit = 1
        rows = connectors.env.execute_query(query.select(
            SQL.identifier(table, "id"),
            *(connectors._field_to_sql(table, name, query) for name in self._hub_inbound_fields()),
        ))
        if not rows:
            raise LookupError(token)
        return tuple(rows[0])

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
            def urls():
                public = self._hub_public_inbound_url(token)
                query = httprequest.query_string.decode("latin-1")
                yield f"{public}?{query}" if query else public
                yield httprequest.url  # werkzeug builds it (IRI to URI): only when the public one fails

            signatures.verify_hubspot_v3(candidates, httprequest.method, urls(), body, headers,
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
        if response.status_code == 429:
            raise RateLimited("token request: HTTP 429", retry_after=ratelimit.retry_after_seconds(response.headers))
        if response.status_code >= 500:
            raise TransientError(
                f"token request: HTTP {response.status_code}", reason="remote_unavailable",
                retry_after=ratelimit.retry_after_seconds(response.headers),
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

        No call is made while the connector's circuit breaker is open or the vendor asked to
        wait: ConnectorPaused (the event waits, uncharged). Rate limits (HubSpot 429, Salesforce
        403 REQUEST_LIMIT_EXCEEDED) raise RateLimited: the event is retried after the vendor's
        hint without being charged an attempt, and the connector pauses as long (HubSpot's rolling
        window: until its oldest call ages out, when this process's calls tell). 5xx and network
        errors raise TransientError (retried with backoff) and count toward the breaker; refused
        credentials (401, also after a fresh OAuth2 token) and other refusals raise
        PermanentError. A call that the end of the worker's run would cut raises OutOfTime:
        the event waits for the next run, uncharged. The quota the vendor reports is kept.
        """
        self.ensure_one()
        url = self._hub_url(path)
        self._hub_check_calls_allowed()
        timeout = kwargs.pop("timeout", self.timeout)
        for attempt in (1, 2):
            try:
                self._hub_auth(kwargs, refresh=attempt == 2)
            except TransientError as exc:
                raise self._hub_note_failure(exc) from None
            call_timeout = self._hub_call_timeout(timeout, f"{method} {path}")
            try:
                response = requests.request(method, url, timeout=call_timeout, **kwargs)
            except requests.Timeout:
                if call_timeout < timeout:
                    raise OutOfTime(f"{method} {path}: cut by the end of the worker's run") from None
                raise self._hub_note_failure(TransientError(f"{method} {path}: Timeout", reason="network")) from None
            except requests.RequestException as exc:
                raise self._hub_note_failure(TransientError(
                    f"{method} {path}: {exc.__class__.__name__}", reason="network",
                )) from None
            if (response.status_code == 401 and attempt == 1
                    and self.auth_type == "oauth2_client_credentials"):
                continue  # expired or revoked token: fetch a new one once
            break
        status = response.status_code
        verdict = ratelimit.classify(status, response.headers, response.text if status >= 400 else "")
        verdict = self._hub_note_answer(verdict, response.headers)
        if status < 300:
            return response
        if status == 401:
            raise PermanentError(
                self.env._("%(vendor)s refused the credentials of connector %(connector)s (HTTP 401 on "
                           "%(method)s %(path)s): check its API secret, then retry.",
                           vendor=self.system, connector=self.display_name, method=method, path=path),
                reason="authentication",
            )
        if verdict.kind == ratelimit.RATE_LIMITED:
            raise RateLimited(
                f"{method} {path}: HTTP {status}, rate limited ({verdict.policy or 'no policy named'})",
                retry_after=self._hub_rate_limit_wait(verdict), policy=verdict.policy,
            )
        if verdict.kind == ratelimit.UNAVAILABLE:
            raise self._hub_note_failure(TransientError(
                f"{method} {path}: HTTP {status}", reason="remote_unavailable", retry_after=verdict.wait,
            ))
        raise PermanentError(
            f"{method} {path}: HTTP {status}: {response.text[:300]}",
            reason="remote_not_found" if status == 404 else "remote_refused",
        )

    # ------------------------------------------------- rate limits and circuit breaker
    # Every call notes what it learned in this process's memory (services/breaker.py: Health),
    # and this process acts on it at once: no call while it saw the breaker trip or the vendor
    # ask to wait. The connector row, which every worker reads (the claim skips the events of
    # connectors whose breaker is open or whose calls are paused), is written once per batch,
    # in a transaction of its own (_hub_own_env): the worker's batch transaction lasts the
    # whole batch, and a row lock of the connector held that long would make the other workers
    # of the connector wait for it, then fail to serialize. The quota is written at most every
    # QUOTA_WRITE_SECONDS per process, unless it is spent.
    # HubSpot's rolling window is paced here, for every caller of _hub_request (pushes, reads of
    # the quote-to-cash handlers, probes): an answer that spends it (Remaining: 0) or a refusal
    # by it (429 TEN_SECONDLY_ROLLING) pauses the connector until the window's oldest call turns
    # one interval old, which the process's own calls tell when it made all of the window's
    # calls (else the whole interval: others spent the rest at times it cannot know).

    def _hub_health(self) -> breaker.Health:
        """This process's notes of the connector's vendor (call under _HEALTH_LOCK)."""
        key = (self.env.cr.dbname, self.id)
        health = _HEALTH.get(key)
        if health is None:
            health = _HEALTH[key] = breaker.Health()
        return health

    def _hub_breaker_policy(self) -> breaker.BreakerPolicy:
        return breaker.BreakerPolicy(self.breaker_threshold, self.breaker_cooldown_base, self.breaker_cooldown_cap)

    def _hub_rate_limit_wait(self, verdict: ratelimit.Verdict) -> float:
        """Seconds to wait after a rate-limited or quota-spending answer: what the vendor said,
        else the backoff cap when the day's allowance is spent (HubSpot resets it at midnight in
        the account's time zone, which the answer does not give), else the backoff base."""
        if verdict.wait:
            return verdict.wait
        return float(self.retry_backoff_cap if verdict.daily else max(self.retry_backoff_base, 1))

    def _hub_note_answer(self, verdict: ratelimit.Verdict, headers) -> ratelimit.Verdict:
        """Note what an answer tells of the vendor: its quota, a pause it asks for, and that it is
        up. Returns ``verdict``, its wait shortened when it is the rolling window's whole interval
        and this process's calls place the window's oldest call (the wait the call's caller and
        the pause use)."""
        now = time.time()
        quota = ratelimit.read_quota(headers)
        probing = self.env.context.get("ps_hub_probe")
        with _HEALTH_LOCK:
            health = self._hub_health()
            if quota is not None:
                health.note_quota(quota, now)
            if verdict.kind in (ratelimit.OK, ratelimit.REFUSED):
                # counted in the vendor's window; not a call its limit refused, nor a 5xx (a
                # gateway's, maybe): counting a call the vendor did not could shorten a wait. At
                # its answer's time, no earlier than the vendor counted it: the wait errs long.
                health.note_call(now)
            if verdict.window:
                precise = health.window_wait(now)
                if precise is not None:
                    verdict = dataclasses.replace(verdict, wait=precise)
            if verdict.kind == ratelimit.RATE_LIMITED:
                health.note_pause(now + self._hub_rate_limit_wait(verdict), "rate_limited")
            elif verdict.kind == ratelimit.UNAVAILABLE:
                if verdict.wait:
                    health.note_pause(now + verdict.wait, "remote_unavailable")
            else:  # it answered: the vendor is up
                if not probing:
                    health.note_success(self.breaker_failures)
                if verdict.wait or verdict.daily:  # this call spent the window or the day
                    health.note_pause(now + self._hub_rate_limit_wait(verdict), "quota_spent")
            urgent = not health.pause_written
        if urgent and not self.env.context.get("ps_hub_batch"):
            self._hub_flush_health()
        return verdict

    def _hub_note_failure(self, exc: TransientError) -> TransientError:
        """Count a failure of the vendor toward the breaker; return ``exc`` to raise."""
        if isinstance(exc, RateLimited):
            now = time.time()
            with _HEALTH_LOCK:
                self._hub_health().note_pause(now + (exc.retry_after or max(self.retry_backoff_base, 1)),
                                              "rate_limited")
            if not self.env.context.get("ps_hub_batch"):
                self._hub_flush_health()
            return exc
        if exc.reason not in breaker.BREAKER_REASONS or self.env.context.get("ps_hub_probe"):
            return exc
        with _HEALTH_LOCK:
            health = self._hub_health()
            was_tripped = health.tripped
            tripped = health.note_failure(str(exc), self.breaker_threshold, self.breaker_failures,
                                          now=time.time(), hold=self.breaker_cooldown_base)
        if tripped and not was_tripped:
            _logger.warning("ps_hub: connector %s (%s): %d consecutive failures, its circuit breaker opens: %s",
                            self.id, self.name, self.breaker_threshold, exc)
            if not self.env.context.get("ps_hub_batch"):
                self._hub_flush_health()
        return exc

    def _hub_wait(self) -> tuple[float, str, str] | None:
        """(seconds, reason, why) the connector must wait before calling its vendor, or None."""
        now = time.time()
        waits = []
        with _HEALTH_LOCK:
            noted = _HEALTH.get((self.env.cr.dbname, self.id))
            noted = noted and noted.wait(now)
        if noted:
            seconds, why = noted
            if why == "breaker":
                waits.append((seconds or float(self.breaker_cooldown_base), "breaker_open", self.env._(
                    "its circuit breaker opened after %s consecutive failures", self.breaker_threshold)))
            else:
                waits.append((seconds, "rate_limited", self.env._("the vendor asked to wait (%s)", why)))
        if self.breaker_state != breaker.CLOSED:
            probe_at = self.breaker_probe_at and self.breaker_probe_at.replace(tzinfo=UTC).timestamp()
            waits.append((max((probe_at or now) - now, 1.0), "breaker_open", self.env._(
                "its circuit breaker is open (last failure: %s)", (self.breaker_last_error or "")[:200])))
        if self.paused_until:
            until = self.paused_until.replace(tzinfo=UTC).timestamp()
            if until > now:
                waits.append((until - now, "rate_limited", self.env._(
                    "the vendor asked to wait (%s)", self.pause_reason or "rate limit")))
        return max(waits, key=lambda wait: wait[0]) if waits else None

    def _hub_check_calls_allowed(self) -> None:
        """Raise ConnectorPaused while the connector may not call its vendor (a probe may)."""
        if self.env.context.get("ps_hub_probe"):
            return
        wait = self._hub_wait()
        if wait:
            seconds, reason, why = wait
            raise ConnectorPaused(
                self.env._("Connector %(name)s makes no call for %(seconds)s s: %(why)s.",
                           name=self.name, seconds=round(seconds), why=why),
                reason=reason, retry_after=seconds,
            )

    @contextmanager
    def _hub_own_env(self):
        """An environment (superuser) whose writes commit at once, apart from the caller's
        transaction, with a short lock timeout (the caller's transaction may hold the lock).

        Its transaction is READ COMMITTED: what it does is a read-modify-write of connector rows
        it locks first, which must see what another worker committed meanwhile rather than fail
        to serialize (as a REPEATABLE READ one does when two workers write one connector).
        Under test the test's cursor is the only transaction there is: a savepoint of it.
        """
        if modules.module.current_test:
            with self.env.cr.savepoint():
                yield self.env(su=True)
            return
        with self.env.registry.cursor() as cr:
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cr.execute("SET LOCAL lock_timeout = '5s'")
            yield self.env(cr=cr, su=True)

    @api.model
    def _hub_flush_health(self) -> None:
        """Write what this process learned of its connectors' vendors since it last did: the
        breaker's failures (opening it at the threshold), pauses and the quota."""
        dbname, now = self.env.cr.dbname, time.time()
        with _HEALTH_LOCK:
            news = {}
            for (db, connector_id), health in _HEALTH.items():
                if db != dbname:
                    continue
                quota = health.quota_due(now, QUOTA_WRITE_SECONDS)
                if health.breaker_due() or not health.pause_written or quota:
                    news[connector_id] = (dataclasses.replace(health), quota)
                    health.written(quota)
        if not news:
            return
        try:
            with self._hub_own_env() as env:
                opened = env["ps.hub.connector"]._hub_store_health(news)
                if opened:
                    opened._hub_breaker_opened()
        except Exception as exc:  # never lose the batch for its side notes: kept for the next one
            if isinstance(exc, (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable)):
                _logger.info("ps_hub: connector health not written (%s): kept for the next batch", exc)
            else:
                _logger.exception("ps_hub: connector health not written: kept for the next batch")
            with _HEALTH_LOCK:
                for connector_id, (noted, _quota) in news.items():
                    health = _HEALTH.setdefault((dbname, connector_id), breaker.Health())
                    health.failures += noted.failures
                    health.tripped = health.tripped or noted.tripped
                    health.succeeded = health.succeeded or noted.succeeded
                    health.last_error = health.last_error or noted.last_error
                    health.stored_seen = max(health.stored_seen, noted.stored_seen)
                    if not noted.pause_written:
                        health.pause_written = False
                    health.quota_written_at = min(health.quota_written_at, noted.quota_written_at)
            return
        self.invalidate_model(BREAKER_FIELDS)

    @api.model
    def _hub_store_health(self, news: dict) -> "PsHubConnector":
        """Write {connector id: (Health, whether to write its quota)}; return the connectors whose
        breaker it opened. Runs in _hub_own_env."""
        cr = self.env.cr
        self.flush_model()
        cr.execute(SQL(
            "SELECT id, breaker_state, breaker_failures, breaker_cooldown, breaker_probe_at, breaker_threshold, "
            "breaker_cooldown_base, breaker_cooldown_cap, paused_until FROM ps_hub_connector "
            "WHERE id IN %s ORDER BY id FOR NO KEY UPDATE", tuple(news),
        ))
        now = fields.Datetime.now()
        opened = []
        for cid, state, failures, cooldown, probe_at, threshold, base, cap, paused_until in cr.fetchall():
            health, quota_due = news[cid]
            stored = breaker.Stored(state, failures or 0, cooldown or 0, probe_at)
            values = {}
            if health.breaker_due():
                change = breaker.merge(stored, health.failures, health.succeeded,
                                       breaker.BreakerPolicy(threshold, base, cap), now)
                if change.failures != stored.failures:
                    values["breaker_failures"] = change.failures
                if health.last_error:
                    values["breaker_last_error"] = health.last_error
                if change.opened:
                    opened.append(cid)
                    values.update(breaker_state=change.state, breaker_cooldown=int(change.cooldown),
                                  breaker_opened_at=now, breaker_probe_at=change.probe_at)
            if not health.pause_written and health.pause_until:
                until = datetime.fromtimestamp(health.pause_until, UTC).replace(tzinfo=None)
                if not paused_until or until > paused_until:
                    values.update(paused_until=until, pause_reason=health.pause_reason)
            if quota_due and health.quota is not None:
                quota = health.quota
                values.update(
                    quota_remaining=quota.remaining, quota_limit=quota.limit,
                    quota_window_seconds=quota.window_seconds, quota_daily_remaining=quota.daily_remaining,
                    quota_daily_limit=quota.daily_limit,
                    quota_read_at=datetime.fromtimestamp(health.quota_at, UTC).replace(tzinfo=None),
                )
            if values:
                cr.execute(SQL(
                    "UPDATE ps_hub_connector SET %s WHERE id = %s",
                    SQL(", ").join(SQL("%s = %s", SQL.identifier(name), value) for name, value in values.items()),
                    cid,
                ))
        self.invalidate_model(BREAKER_FIELDS)
        return self.browse(opened)

    def _hub_breaker_opened(self) -> None:
        """Tell the integration managers that the connectors' breakers opened: one activity each
        (none more while it stays open), a message and an audit log entry."""
        managers = self.env.ref("ps_integration_hub.group_hub_manager").all_user_ids.filtered(
            lambda user: user.active and not user.share)
        for connector in self:
            summary = self.env._("Circuit breaker open: %s", connector.name)
            note = self.env._(
                "%(vendor)s failed %(count)s times in a row (last: %(error)s). Its events wait, uncharged; a "
                "probe call at %(probe)s (UTC) closes the breaker if the vendor answers again. Check the "
                "vendor's status, or use Probe Now / Close Breaker on the connector.",
                vendor=connector.system, count=connector.breaker_failures,
                error=(connector.breaker_last_error or "")[:300], probe=connector.breaker_probe_at,
            )
            if not connector.activity_search([BREAKER_ACTIVITY]):
                for user in managers.filtered(lambda user, c=connector: c.company_id in user.company_ids):
                    connector.activity_schedule(BREAKER_ACTIVITY, summary=summary, note=note, user_id=user.id)
            connector.message_post(body=note)
            connector._hub_log_breaker("breaker_open", breaker.CLOSED, note)

    def _hub_log_breaker(self, action: str, before: str, note: str) -> None:
        self.env["ps.hub.audit.log"].sudo().create({
            "connector_id": self.id, "company_id": self.company_id.id, "user_id": self.env.uid,
            "action": action, "before": {"breaker_state": before},
            "after": {"breaker_state": self.breaker_state}, "note": note,
        })

    def _hub_breaker_closed(self, how: str) -> None:
        """The breaker closed: the managers' activities are done, a message, an audit log entry."""
        for connector in self:
            connector.activity_feedback([BREAKER_ACTIVITY], feedback=how)
            connector.message_post(body=how)
            connector._hub_log_breaker("breaker_close", breaker.OPEN, how)

    # ------------------------------------------------------------------ probes

    def _hub_probe_request(self) -> tuple[str, str]:
        """(method, path) of a cheap call that tells whether the vendor answers again: HubSpot's
        account details, Salesforce's organization limits (which also report the day's quota),
        else the API's root. A module that adds a system returns its own."""
        if self.system == "hubspot":
            return "GET", "/account-info/v3/details"
        if self.system == "salesforce":
            return "GET", "/services/data/v62.0/limits"
        return "GET", "/"

    def _hub_probe(self) -> bool:
        """One probe call: the vendor answers (anything but a 5xx or a network error; a rate limit
        also says it is up) or not. Closes or reopens the breaker; True when closed."""
        self.ensure_one()
        method, path = self._hub_probe_request()
        try:
            self.with_context(ps_hub_probe=True)._hub_request(method, path)
            error = None
        except (PermanentError, RateLimited):
            error = None  # it answered: up, whatever it thinks of this request
        except OutOfTime:
            return False
        except TransientError as exc:
            error = str(exc)
        try:
            with self._hub_own_env() as env:
                closed = env["ps.hub.connector"].browse(self.id)._hub_store_probe(error)
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable) as exc:
            # left probing: probed again once its next probe time comes
            _logger.info("ps_hub: connector %s: probe result not written (%s)", self.id, exc)
            closed = False
        self.invalidate_model(BREAKER_FIELDS)
        return closed

    def _hub_store_probe(self, error: str | None) -> bool:
        """Write a probe's result (``error`` None: it went through). Runs in _hub_own_env."""
        self.ensure_one()
        self.flush_model()
        self.env.cr.execute(SQL(
            "SELECT breaker_state, breaker_failures, breaker_cooldown, breaker_probe_at FROM ps_hub_connector "
            "WHERE id = %s FOR NO KEY UPDATE", self.id,
        ))
        row = self.env.cr.fetchone()
        stored = breaker.Stored(row[0], row[1] or 0, row[2] or 0, row[3])
        if stored.state == breaker.CLOSED:
            return True  # closed meanwhile (by hand)
        now = fields.Datetime.now()
        change = breaker.probed(stored, error is None, self._hub_breaker_policy(), now)
        values = {"breaker_state": change.state, "breaker_failures": change.failures,
                  "breaker_cooldown": int(change.cooldown), "breaker_probe_at": change.probe_at}
        if error:
            values["breaker_last_error"] = error
        else:
            values["breaker_opened_at"] = None
        self.env.cr.execute(SQL(
            "UPDATE ps_hub_connector SET %s WHERE id = %s",
            SQL(", ").join(SQL("%s = %s", SQL.identifier(name), value) for name, value in values.items()), self.id,
        ))
        self.invalidate_recordset(BREAKER_FIELDS)
        if error is None:
            with _HEALTH_LOCK:
                self._hub_health().note_success(0)
            self._hub_breaker_closed(self.env._("The probe call went through: circuit breaker closed."))
        else:
            _logger.warning("ps_hub: connector %s (%s): probe failed (%s), breaker open for %s s more",
                            self.id, self.name, error, int(change.cooldown))
        return error is None

    @api.model
    def _hub_probe_due(self) -> int:
        """Probe the vendors of the connectors whose breaker's cooldown is over; return how many.

        Each probe is taken by one worker: the connector is marked half open (probing) and its
        next probe time moved on, in a transaction committed before the call, so that no other
        worker probes it meanwhile and a worker that dies mid-probe leaves it to the next one.
        """
        self.flush_model(["breaker_state", "breaker_probe_at"])
        self.env.cr.execute(SQL(
            "SELECT 1 FROM ps_hub_connector WHERE breaker_state <> 'closed' "
            "AND breaker_probe_at <= statement_timestamp() AT TIME ZONE 'UTC' LIMIT 1"
        ))
        if not self.env.cr.fetchone():  # the usual case, read on the worker's own connection
            return 0
        try:
            with self._hub_own_env() as env:
                env.cr.execute(SQL(
                    """
                    UPDATE ps_hub_connector c
                       SET breaker_state = 'half_open',
                           breaker_probe_at = statement_timestamp() AT TIME ZONE 'UTC'
                                              + make_interval(secs => GREATEST(c.breaker_cooldown, 1))
                     WHERE c.id IN (SELECT id FROM ps_hub_connector
                                     WHERE breaker_state IN ('open', 'half_open') AND active
                                       AND breaker_probe_at <= statement_timestamp() AT TIME ZONE 'UTC'
                                       FOR NO KEY UPDATE SKIP LOCKED)
                    RETURNING c.id
                    """,
                ))
                due = [row[0] for row in env.cr.fetchall()]
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            return 0
        self.invalidate_model(BREAKER_FIELDS)
        for connector in self.sudo().browse(due):
            connector._hub_probe()
        return len(due)

    @api.model
    def _hub_blocked_sql(self) -> SQL:
        """A query of the ids of the connectors whose events the claim leaves queued: breaker not
        closed, or calls paused by the vendor. A handful of rows at most: the claim reads it once
        per statement (an InitPlan), with no round trip of its own."""
        self.flush_model(["breaker_state", "paused_until"])
        return SQL(
            "SELECT id FROM ps_hub_connector WHERE breaker_state <> 'closed' "
            "OR paused_until > statement_timestamp() AT TIME ZONE 'UTC'"
        )

    @api.model
    def _hub_blocked_ids(self) -> list[int]:
        """The ids of the connectors whose events the claim leaves queued (see _hub_blocked_sql)."""
        self.env.cr.execute(self._hub_blocked_sql())
        return [row[0] for row in self.env.cr.fetchall()]

    def action_breaker_probe(self):
        """Probe the vendor now (Integration Managers): closes the breaker if it answers."""
        self._hub_check_manager()
        for connector in self:
            closed = connector.sudo()._hub_probe()
            if not closed:
                connector.message_post(body=self.env._(
                    "Probe failed: the circuit breaker stays open (%s).", connector.sudo().breaker_last_error or ""))
        return True

    def action_breaker_close(self):
        """Close the breaker by hand (Integration Managers): the connector's events run again at once,
        those it gave back unstarted included."""
        self._hub_check_manager()
        for connector in self.filtered(lambda c: c.breaker_state != breaker.CLOSED):
            connector_sudo = connector.sudo()
            self.env.cr.execute(SQL(
                "UPDATE ps_hub_connector SET breaker_state = 'closed', breaker_failures = 0, breaker_cooldown = 0, "
                "breaker_probe_at = NULL, breaker_opened_at = NULL WHERE id = %s", connector.id,
            ))
            # the events given back while it was open wait for the probe time: not any more
            self.env["ps.hub.event"].flush_model(["next_attempt_at", "state"])
            self.env.cr.execute(SQL(
                "UPDATE ps_hub_event SET next_attempt_at = statement_timestamp() AT TIME ZONE 'UTC' "
                "WHERE connector_id = %s AND state = 'pending' "
                "AND next_attempt_at > statement_timestamp() AT TIME ZONE 'UTC'", connector.id,
            ))
            self.env["ps.hub.event"].invalidate_model(["next_attempt_at"])
            connector_sudo.invalidate_recordset(BREAKER_FIELDS)
            with _HEALTH_LOCK:
                connector._hub_health().note_success(0)
            connector_sudo._hub_breaker_closed(self.env._("Circuit breaker closed by %s.", self.env.user.name))
        return True
