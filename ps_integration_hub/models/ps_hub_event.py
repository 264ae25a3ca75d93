import json
import logging
import math
import time
import traceback
import uuid
from collections import defaultdict
from datetime import timedelta

import psycopg2.errors
import requests

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, config

from ..services import budget, parsers
from ..services.backoff import backoff_delay
from ..services.errors import HubError, IgnoreEvent, OutOfTime
from .ir_cron import note_more_work, runner_pass_started

_logger = logging.getLogger(__name__)

STATES = [
    ("pending", "Pending"),
    ("processing", "Processing"),
    ("retry", "Waiting to Retry"),
    ("done", "Done"),
    ("exception", "Exception"),
    ("dead", "Dead Letter"),
    ("ignored", "Ignored"),
]
ACTIVE_STATES = ("pending", "retry", "processing")
WORKER_CRONS = (
    "ps_integration_hub.ir_cron_process_events_1",
    "ps_integration_hub.ir_cron_process_events_2",
)
# headers worth keeping for a person who investigates; signatures and cookies are not
KEPT_HEADERS = (
    "content-type", "user-agent", "x-hubspot-request-timestamp", "x-bamboohr-timestamp",
    "webhook-id", "webhook-timestamp", "x-request-id", "x-forwarded-for",
)
TRANSIENT_DB_ERRORS = (
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.LockNotAvailable,
)
RELEASE = "release"  # outcome of an event a run did not start: back to the queue, uncharged
_LAST_WAKEUP = 0.0  # monotonic time this process last woke the cron runners
# business context a handler noted for the exception desk, kept across its rollback
_NOTED_CONTEXT: dict[tuple[str, int], dict] = {}
# seconds one event took in this process's recent runs, per database: sizes the claims
_SECONDS_PER_EVENT: dict[str, float] = {}


class PsHubEvent(models.Model):
    _name = "ps.hub.event"
    _description = "Integration Event"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True
    _mail_post_access = "read"

    connector_id = fields.Many2one(
        "ps.hub.connector", required=True, index=True, ondelete="restrict", readonly=True,
    )
    company_id = fields.Many2one("res.company", required=True, index=True, readonly=True)
    system = fields.Selection(related="connector_id.system", store=True)
    direction = fields.Selection(
        [("in", "Inbound"), ("out", "Outbound")], required=True, default="in", readonly=True,
    )
    event_type = fields.Char(required=True, index=True, readonly=True)
    external_id = fields.Char(index=True, readonly=True)
    idempotency_key = fields.Char(required=True, readonly=True)
    ordering_key = fields.Char(readonly=True)
    correlation_id = fields.Char(index=True, readonly=True, help="Shared by the events of one delivery.")
    payload = fields.Json(readonly=True)
    payload_raw = fields.Text("Raw Payload", readonly=True, help="The body as received when it could not be parsed.")
    payload_pretty = fields.Text("Payload (formatted)", compute="_compute_payload_pretty")
    headers = fields.Json(readonly=True)
    state = fields.Selection(STATES, required=True, default="pending", index=True, readonly=True, tracking=True)
    attempts = fields.Integer(readonly=True)
    next_attempt_at = fields.Datetime(readonly=True, default=fields.Datetime.now)
    claimed_at = fields.Datetime(readonly=True)
    claim_token = fields.Char(readonly=True, copy=False)
    error_class = fields.Selection(
        [("transient", "Transient"), ("permanent", "Permanent"), ("business", "Business")],
        readonly=True,
    )
    reason = fields.Char(index=True, readonly=True, help="Short code of what went wrong, to group by.")
    last_error = fields.Text(readonly=True)
    ignore_reason = fields.Text(readonly=True)
    res_model = fields.Char("Resulting Model", readonly=True)
    res_id = fields.Many2oneReference("Resulting Record ID", model_field="res_model", readonly=True)
    occurred_at = fields.Datetime(readonly=True, help="When the vendor says it happened.")
    received_at = fields.Datetime(readonly=True, default=fields.Datetime.now)
    started_at = fields.Datetime(readonly=True)
    done_at = fields.Datetime(readonly=True)
    duration_ms = fields.Float("Handler Time (ms)", readonly=True, aggregator="avg")
    latency_ms = fields.Float("Received to Done (ms)", readonly=True, aggregator="avg")
    ctx_customer = fields.Char("Customer", readonly=True)
    ctx_reference = fields.Char("Reference", readonly=True)
    ctx_amount = fields.Float("Amount", readonly=True)
    ctx_currency = fields.Char("Currency", readonly=True)

    _idempotency_unique = models.UniqueIndex("(connector_id, direction, idempotency_key)")
    # direction is in the predicate so that the claim (ORDER BY next_attempt_at, id LIMIT n)
    # reads this index in order whatever the statistics say: a backlog queued faster than
    # autovacuum analyzes the table otherwise got a plan that filters and sorts all of it
    _claim_idx = models.Index("(next_attempt_at, id) WHERE state IN ('pending', 'retry') AND direction = 'in'")
    _ordering_idx = models.Index(
        "(connector_id, ordering_key, id) WHERE state IN ('pending', 'retry', 'processing')"
    )
    _stale_idx = models.Index("(claimed_at) WHERE state = 'processing'")

    @api.depends("payload", "payload_raw")
    def _compute_payload_pretty(self):
        for event in self:
            if event.payload is not None and event.payload is not False:
                event.payload_pretty = json.dumps(event.payload, indent=2, sort_keys=True)
            else:
                event.payload_pretty = event.payload_raw or ""

    @api.depends("connector_id", "event_type", "external_id")
    def _compute_display_name(self):
        for event in self:
            event.display_name = " / ".join(
                p for p in (event.connector_id.name, event.event_type, event.external_id) if p
            )

    def _hub_record(self):
        """The Odoo record this event produced, if any."""
        self.ensure_one()
        if not self.res_model or not self.res_id or self.res_model not in self.env:
            return None
        return self.env[self.res_model].browse(self.res_id).exists()

    # ------------------------------------------------------------------ enqueue

    @api.model
    def _hub_enqueue(self, connector, delivery: parsers.Delivery, headers=None) -> tuple[list[int], int]:
        """Insert the delivery's events; return (new ids, number of duplicates).

        One INSERT ... ON CONFLICT DO NOTHING on the idempotency index: a redelivered
        event, even one racing with its twin in another process, is not stored twice.
        """
        events = delivery.events
        if not events:
            return [], 0
        # a header may hold NUL, which jsonb refuses: the copy kept for people drops it
        kept = {k: str(v).replace("\x00", "\ufffd") for k, v in (headers or {}).items()
                if k.lower() in KEPT_HEADERS}
        headers_json = json.dumps(kept)
        correlation_id = uuid.uuid4().hex
        uid = self.env.uid or None
        rows = []
        for ev in events:
            malformed = ev.parse_error is not None
            rows.append(SQL(
                "(%s, %s, %s, 'in', %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, %s, "
                "%s, 0, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', %s, %s, "
                "now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
                connector.id, connector.system, connector.company_id.id, ev.event_type[:256], ev.external_id,
                ev.idempotency_key, ev.ordering_key, correlation_id,
                json.dumps(ev.payload) if ev.payload is not None else None,
                ev.raw if malformed else None, headers_json,
                "exception" if malformed else "pending",
                "permanent" if malformed else None,
                "malformed" if malformed else None,
                ev.parse_error, ev.occurred_at, uid, uid,
            ))
        self.env.cr.execute(SQL(
            "INSERT INTO ps_hub_event (connector_id, system, company_id, direction, event_type, "
            "external_id, idempotency_key, ordering_key, correlation_id, payload, payload_raw, "
            "headers, state, error_class, reason, last_error, occurred_at, attempts, "
            "next_attempt_at, received_at, create_uid, write_uid, create_date, write_date) "
            "VALUES %s ON CONFLICT (connector_id, direction, idempotency_key) DO NOTHING "
            "RETURNING id, state",
            SQL(", ").join(rows),
        ))
        inserted = self.env.cr.fetchall()
        new_ids = [row[0] for row in inserted]
        if any(state == "pending" for _id, state in inserted):
            self._hub_trigger_workers()
        return new_ids, len(events) - len(new_ids)

    @api.model
    def _hub_trigger_workers(self, at=None):
        """Wake the worker crons (after commit) instead of waiting for their next run.

        A cron that already has a due trigger gets no second one: under load every delivery
        would otherwise add a row the cron deletes unread. The runners are still woken, at
        most twice a second per process (each wake-up opens a connection to the 'postgres'
        database), in case one skipped the due trigger while the job ran elsewhere.
        """
        IrModelData = self.env["ir.model.data"]
        cron_ids = tuple(filter(None, (IrModelData._xmlid_to_res_id(x, raise_if_not_found=False)
                                       for x in WORKER_CRONS)))
        if not cron_ids:
            return
        Cron = self.env["ir.cron"].sudo()
        if at is not None:
            for cron in Cron.browse(cron_ids):
                cron._trigger(at)
            return
        self.env.cr.execute(SQL(
            "SELECT c.id FROM ir_cron c WHERE c.id IN %s AND c.active AND NOT EXISTS ("
            "SELECT 1 FROM ir_cron_trigger t WHERE t.cron_id = c.id "
            "AND t.call_at <= statement_timestamp() AT TIME ZONE 'UTC')",
            cron_ids,
        ))
        untriggered = [row[0] for row in self.env.cr.fetchall()]
        for cron in Cron.browse(untriggered):
            cron._trigger()  # notifies the runners after commit
        global _LAST_WAKEUP  # noqa: PLW0603
        if not untriggered and time.monotonic() - _LAST_WAKEUP > 0.5:
            _LAST_WAKEUP = time.monotonic()
            self.env.cr.postcommit.add(Cron._notifydb)

    # ------------------------------------------------------------------ handlers

    def _hub_handlers(self) -> dict:
        """{(system, event_type): callable(event) -> record | None}; modules extend it."""
        return {}

    def _hub_batch_handlers(self) -> dict:
        """{(system, event_type): callable(events) -> {event id: record | None | HubError |
        IgnoreEvent}} for handlers that do many events in one go (one create for many
        records). A batch handler must have a single-event twin in _hub_handlers: it is
        used when the batch fails."""
        return {}

    def _hub_note_context(self, customer=None, reference=None, amount=None, currency=None):
        """Business context for the exception desk; kept even if the handler fails."""
        self.ensure_one()
        noted = _NOTED_CONTEXT.setdefault((self.env.cr.dbname, self.id), {})
        for key, value in (("ctx_customer", customer), ("ctx_reference", reference),
                           ("ctx_amount", amount), ("ctx_currency", currency)):
            if value is not None:
                noted[key] = value

    # ------------------------------------------------------------------ workers

    @api.model
    def _hub_param(self, name: str, default: int) -> int:
        value = self.env["ir.config_parameter"].sudo().get_param(f"ps_integration_hub.{name}")
        try:
            return int(value) if value else default
        except ValueError:
            return default

    @api.model
    def _hub_claim(self, limit: int, token: str) -> list[int]:
        """Mark up to ``limit`` ready events as processing for ``token``.

        Rows locked by another worker are skipped; an event waits while an earlier event
        of the same external object is still pending, waiting to retry or processing. An
        earlier event in exception or dead does not hold the later ones: a person works it
        on the desk, in their own time, and handlers decide from the vendor's current state,
        not from the order of the messages.
        """
        self.flush_model()
        self.env.cr.execute(SQL(
            """
            UPDATE ps_hub_event SET state = 'processing', claim_token = %(token)s,
                   claimed_at = statement_timestamp() AT TIME ZONE 'UTC', attempts = attempts + 1
             WHERE id IN (
                SELECT e.id FROM ps_hub_event e
                 WHERE e.state IN ('pending', 'retry') AND e.direction = 'in'
                   AND e.next_attempt_at <= statement_timestamp() AT TIME ZONE 'UTC'
                   AND (e.ordering_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM ps_hub_event p
                         WHERE p.connector_id = e.connector_id
                           AND p.ordering_key = e.ordering_key
                           AND p.id < e.id
                           AND p.state IN ('pending', 'retry', 'processing')))
                 ORDER BY e.next_attempt_at, e.id
                 LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            token=token, limit=limit,
        ))
        ids = sorted(row[0] for row in self.env.cr.fetchall())
        self.invalidate_model(["state", "claim_token", "claimed_at", "attempts"])
        return ids

    @api.model
    def _hub_claim_fresh(self, limit: int, token: str, tries: int = 20) -> list[int]:
        """_hub_claim that survives a concurrent claim (commits between its tries).

        Under REPEATABLE READ, locking a row another worker claimed and committed after this
        transaction's snapshot raises a serialization failure even with SKIP LOCKED: end
        the transaction and claim again on a fresh snapshot.
        """
        for _try in range(tries):
            try:
                with self.env.cr.savepoint(flush=False):
                    return self._hub_claim(limit, token)
            except psycopg2.errors.SerializationFailure:
                self.env["ir.cron"]._commit_progress(0)
        return []

    @api.model
    def _hub_reclaim_stale(self) -> int:
        """Put back events left in processing by a worker that died, after a backoff.

        A live worker holds a row lock on what it processes, so only the rows of a dead
        one can be locked here (SKIP LOCKED), and only once their lease has passed. The
        attempt charged at the claim stands, so an event that kills its worker is dead-
        lettered in the end instead of taking workers down forever; and it waits the
        connector's backoff like any transient failure, not the next run.
        """
        lease = self._hub_param("lease_seconds", 300)
        self.flush_model()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(SQL(
                    """
                    SELECT e.id, e.attempts, c.retry_max_attempts, c.retry_backoff_base, c.retry_backoff_cap
                      FROM ps_hub_event e JOIN ps_hub_connector c ON c.id = e.connector_id
                     WHERE e.state = 'processing'
                       AND e.claimed_at < statement_timestamp() AT TIME ZONE 'UTC' - make_interval(secs => %s)
                     ORDER BY e.id
                       FOR UPDATE OF e SKIP LOCKED
                    """,
                    lease,
                ), log_exceptions=False)
                stale = self.env.cr.fetchall()
        except psycopg2.errors.SerializationFailure:
            return 0  # a worker finished some of them after this snapshot began: the next run looks again
        if not stale:
            return 0
        rows = [
            SQL("(%s, %s, %s::float)", event_id, "dead" if attempts >= max_attempts else "retry",
                backoff_delay(attempts, base, cap))
            for event_id, attempts, max_attempts, base, cap in stale
        ]
        self.env.cr.execute(SQL(
            """
            UPDATE ps_hub_event e
               SET state = v.state, error_class = 'transient', reason = 'worker_lost',
                   last_error = 'The worker processing this event stopped before it finished.',
                   claim_token = NULL,
                   next_attempt_at = statement_timestamp() AT TIME ZONE 'UTC' + make_interval(secs => v.delay),
                   write_date = now() AT TIME ZONE 'UTC'
              FROM (VALUES %s) AS v(id, state, delay)
             WHERE e.id = v.id
            """,
            SQL(", ").join(rows),
        ))
        ids = [row[0] for row in stale]
        _logger.warning("ps_hub: reclaimed %d event(s) of a lost worker: %s", len(ids), ids)
        self.invalidate_model()
        self.env["ps.hub.audit.log"]._hub_log_many([
            (event, "reclaim", {"state": "processing"}, {"state": event.state, "reason": "worker_lost"})
            for event in self.browse(ids)
        ])
        return len(ids)

    @api.model
    def _hub_run_budget(self) -> budget.RunBudget:
        """The deadlines of this run: in a cron runner, well inside Odoo's time limits; none elsewhere."""
        started = runner_pass_started()
        if started is None:
            return budget.unbounded()
        real_cron = config.get("limit_time_real_cron")
        return budget.RunBudget(started=started, seconds=budget.usable_seconds(
            limit_time_real=config.get("limit_time_real") or 0,
            limit_time_real_cron=-1 if real_cron is None else real_cron,
            limit_time_cpu=config.get("limit_time_cpu") or 0,
            prefork=bool(config.get("workers")),
        ))

    @api.model
    def _cron_process_events(self, limit: int | None = None):
        """Cron worker: claim, process and commit batches until the queue is empty or the run's time is up.

        A run ends well inside Odoo's time limits (services/budget.py): it stops claiming,
        then starting events, then calling vendors, and gives back what it did not start.
        While work remains it says so and the cron runners are woken for the next run at
        once, instead of Odoo's 10 loops of a job and a runner's minute of sleep.
        """
        cron = self.env["ir.cron"]
        run = self._hub_run_budget()
        if not run.can_claim():  # an earlier job of this runner pass used the time
            note_more_work()
            cron._commit_progress(0, remaining=1)
            return
        batch_size = limit or self._hub_param("batch_size", 50)
        self._hub_reclaim_stale()
        cron._commit_progress(0)
        workers = self
        if not math.isinf(run.seconds):
            workers = self.with_context(ps_hub_start_until=run.start_until, ps_hub_call_until=run.call_until)
        dbname = self.env.cr.dbname
        while True:
            if not run.can_claim():
                note_more_work()
                cron._commit_progress(0, remaining=1)
                return
            size = run.claim_size(batch_size, _SECONDS_PER_EVENT.get(dbname))
            token = uuid.uuid4().hex
            claimed = self._hub_claim_fresh(size, token)
            if not claimed:
                cron._commit_progress(0, remaining=0)
                return
            cron._commit_progress(0, remaining=len(claimed))  # the claim is durable
            start = time.monotonic()
            ran = workers._hub_process_claimed(token)
            if ran:
                took = (time.monotonic() - start) / len(ran)
                previous = _SECONDS_PER_EVENT.get(dbname)
                _SECONDS_PER_EVENT[dbname] = took if previous is None else (previous + took) / 2
            more = len(claimed) == size or len(ran) < len(claimed)
            cron._commit_progress(len(ran), remaining=1 if more else 0)

    @api.model
    def _hub_process_claimed(self, token: str):
        """Lock and process the events claimed under ``token`` (no commit); return those it ran."""
        self.env.cr.execute(SQL(
            "SELECT id FROM ps_hub_event WHERE claim_token = %s AND state = 'processing' "
            "ORDER BY id FOR UPDATE", token,
        ))
        events = self.browse([row[0] for row in self.env.cr.fetchall()])
        return events._hub_run()

    def _hub_out_of_time(self) -> bool:
        """This run may start no more events (the deadline comes with the worker's context)."""
        return time.monotonic() >= self.env.context.get("ps_hub_start_until", math.inf)

    def _hub_run(self):
        """Run the handlers and record every outcome in one write; return the events it ran.

        Events with a batch handler are first handled together in one savepoint (one
        create for many records); if that batch fails, each of them is handled alone, so
        one bad event never takes the others down. The rest run one savepoint each.
        Events the run has no time left for are given back to the queue (_hub_release).
        """
        events = self.with_context(tracking_disable=True, mail_notrack=True)
        handlers, batch_handlers = self._hub_handlers(), self._hub_batch_handlers()
        outcomes = {}
        groups = defaultdict(list)
        for event in events:
            if (event.system, event.event_type) in batch_handlers:
                groups[event.system, event.event_type].append(event.id)
        for key, ids in groups.items():
            if not self._hub_out_of_time():
                outcomes.update(events.browse(ids)._hub_run_batch(batch_handlers[key]))
        for event in events:
            if event.id not in outcomes:
                if event._hub_out_of_time():
                    outcomes[event.id] = {"state": RELEASE}
                    continue
                start, started_at = time.perf_counter(), fields.Datetime.now()
                outcome = event._hub_run_one(handlers)
                outcome.update(duration_ms=(time.perf_counter() - start) * 1000, started_at=started_at)
                outcomes[event.id] = outcome
        for event_id, outcome in outcomes.items():
            outcome.update(_NOTED_CONTEXT.pop((self.env.cr.dbname, event_id), {}))
        released = {event_id for event_id, outcome in outcomes.items() if outcome["state"] == RELEASE}
        self._hub_write_outcomes([(event, outcomes[event.id]) for event in events if event.id not in released])
        self.browse(sorted(released))._hub_release()
        return self.filtered(lambda event: event.id not in released)

    def _hub_run_batch(self, batch_handler) -> dict:
        """{event id: outcome} of a batch handler, or {} when the batch must be run one by one."""
        start, started_at = time.perf_counter(), fields.Datetime.now()
        try:
            with self.env.cr.savepoint():
                results = batch_handler(self)
        except Exception as exc:  # noqa: BLE001 - each event is retried alone, which classifies it
            _logger.info("ps_hub: batch of %d events failed (%s), running them one by one", len(self), exc)
            return {}
        duration = (time.perf_counter() - start) * 1000 / max(len(self), 1)
        outcomes = {}
        for event in self:
            result = results.get(event.id)
            if isinstance(result, OutOfTime):
                outcome = {"state": RELEASE}
            elif isinstance(result, IgnoreEvent):
                outcome = {"state": "ignored", "reason": "not_applicable", "ignore_reason": result.reason}
            elif isinstance(result, HubError):
                outcome = event._hub_failure(result.error_class, result.reason, str(result),
                                             getattr(result, "retry_after", None))
            else:
                outcome = event._hub_success(result)
            outcomes[event.id] = dict(outcome, duration_ms=duration, started_at=started_at)
        return outcomes

    def _hub_success(self, record) -> dict:
        result = {"state": "done", "error_class": False, "reason": False, "last_error": False}
        if record:
            record.ensure_one()
            result.update(res_model=record._name, res_id=record.id)
        return result

    def _hub_run_one(self, handlers) -> dict:
        handler = handlers.get((self.system, self.event_type))
        if handler is None:
            return {"state": "ignored", "reason": "no_handler",
                    "ignore_reason": f"No handler for {self.system} event {self.event_type}."}
        try:
            with self.env.cr.savepoint():
                record = handler(self)
        except IgnoreEvent as exc:
            return {"state": "ignored", "reason": "not_applicable", "ignore_reason": exc.reason}
        except OutOfTime:
            return {"state": RELEASE}
        except HubError as exc:
            return self._hub_failure(exc.error_class, exc.reason, str(exc),
                                     getattr(exc, "retry_after", None))
        except psycopg2.errors.UniqueViolation as exc:
            return self._hub_unique_violation(exc)
        except TRANSIENT_DB_ERRORS as exc:
            return self._hub_failure("transient", "database_conflict", str(exc).strip())
        except requests.RequestException as exc:
            return self._hub_failure("transient", "network", f"{exc.__class__.__name__}: {exc}")
        except (UserError, ValidationError, AccessError) as exc:
            return self._hub_failure("business", "rejected_by_odoo", str(exc))
        except Exception as exc:
            _logger.exception("ps_hub: handler of event %s crashed", self.id)
            return self._hub_failure(
                "permanent", "handler_crash",
                f"{exc.__class__.__name__}: {exc}\n\n{traceback.format_exc(limit=8)}",
            )
        return self._hub_success(record)

    def _hub_unique_violation(self, exc: psycopg2.errors.UniqueViolation) -> dict:
        """A unique violation at the first attempt is likely another worker creating the same
        record (two deals of one new customer), which this transaction's snapshot cannot see:
        retried. Met again, it is in the data (a stale binding, two external records for one
        Odoo record): no retry cures that, a person must."""
        constraint = exc.diag.constraint_name or "a unique constraint"
        error = str(exc).strip()
        if self.attempts <= 1:
            return self._hub_failure("transient", "database_conflict", f"unique violation on {constraint}: {error}")
        return self._hub_failure(
            "permanent", "unique_violation",
            f"unique violation on {constraint}, again after a retry: {error}\n\nWhat this event would create "
            "already exists (a stale binding, or two external records for one Odoo record): fix or remove "
            "the existing record or binding, then retry.",
        )

    def _hub_failure(self, error_class, reason, message, retry_after=None) -> dict:
        connector = self.connector_id
        result = {"error_class": error_class, "reason": reason, "last_error": message}
        if error_class != "transient":
            result["state"] = "exception"
        elif self.attempts >= connector.retry_max_attempts:
            result["state"] = "dead"
        else:
            delay = backoff_delay(self.attempts, connector.retry_backoff_base,
                                  connector.retry_backoff_cap)
            delay = max(delay, retry_after or 0)
            result["state"] = "retry"
            result["next_attempt_at"] = fields.Datetime.now() + timedelta(seconds=delay)
        return result

    def _hub_release(self):
        """Give back claimed events the run had no time for: not charged an attempt, and ready
        for any worker at once (in their place: a later event of their object still waits)."""
        if not self:
            return
        self.flush_model()
        self.env.cr.execute(SQL(
            """
            UPDATE ps_hub_event
               SET state = CASE WHEN error_class IS NULL THEN 'pending' ELSE 'retry' END,
                   attempts = GREATEST(attempts - 1, 0), claim_token = NULL, claimed_at = NULL,
                   write_date = now() AT TIME ZONE 'UTC'
             WHERE id IN %s AND state = 'processing'
            """,
            tuple(self.ids),
        ))
        self.invalidate_recordset(["state", "attempts", "claim_token", "claimed_at"])
        _logger.info("ps_hub: %d event(s) given back unstarted, the run's time is up", len(self))

    def _hub_write_outcomes(self, outcomes):
        """One UPDATE and one audit INSERT for the whole batch."""
        if not outcomes:
            return
        self.flush_model()
        rows, audit = [], []
        for event, out in outcomes:
            rows.append(SQL(
                "(%s, %s, %s, %s, %s, %s, %s, %s::int, %s::timestamp, %s::timestamp, "
                "%s::float, %s, %s, %s::float, %s)",
                event.id, out["state"], out.get("error_class") or None, out.get("reason") or None,
                out.get("last_error") or None, out.get("ignore_reason"), out.get("res_model"), out.get("res_id"),
                out.get("next_attempt_at"), out["started_at"], out["duration_ms"],
                out.get("ctx_customer"), out.get("ctx_reference"), out.get("ctx_amount"),
                out.get("ctx_currency"),
            ))
            audit.append((event, "process", {"state": "processing"},
                          {"state": out["state"], "reason": out.get("reason") or None}))
        self.env.cr.execute(SQL(
            """
            UPDATE ps_hub_event e SET
                   state = v.state, error_class = v.error_class, reason = v.reason,
                   last_error = v.last_error, ignore_reason = COALESCE(v.ignore_reason, e.ignore_reason),
                   res_model = COALESCE(v.res_model, e.res_model), res_id = COALESCE(v.res_id, e.res_id),
                   next_attempt_at = COALESCE(v.next_attempt_at, e.next_attempt_at),
                   started_at = v.started_at,
                   done_at = CASE WHEN v.state IN ('done', 'ignored')
                                  THEN clock_timestamp() AT TIME ZONE 'UTC' END,
                   latency_ms = CASE WHEN v.state = 'done' THEN 1000 * EXTRACT(EPOCH FROM
                                  clock_timestamp() AT TIME ZONE 'UTC' - e.received_at) END,
                   duration_ms = v.duration_ms,
                   ctx_customer = COALESCE(v.ctx_customer, e.ctx_customer),
                   ctx_reference = COALESCE(v.ctx_reference, e.ctx_reference),
                   ctx_amount = COALESCE(v.ctx_amount, e.ctx_amount),
                   ctx_currency = COALESCE(v.ctx_currency, e.ctx_currency),
                   claim_token = NULL, write_date = now() AT TIME ZONE 'UTC', write_uid = %s
              FROM (VALUES %s) AS v(id, state, error_class, reason, last_error, ignore_reason,
                   res_model, res_id, next_attempt_at, started_at, duration_ms,
                   ctx_customer, ctx_reference, ctx_amount, ctx_currency)
             WHERE e.id = v.id
            """,
            self.env.uid, SQL(", ").join(rows),
        ))
        self.invalidate_recordset()
        self.env["ps.hub.audit.log"]._hub_log_many(audit)

    # ------------------------------------------------------- exception desk actions
    # The exception desk is the only door for people. Events change through the engine (SQL,
    # or server code in sudo mode) and through the desk actions below, which check the group
    # and the state and then write through a sudo recordset. A generic create/write/unlink is
    # refused to everyone else: XML-RPC and JSON-RPC reach those with the caller's access
    # rights, and readonly=True only binds the web client. Nothing reaches sudo mode over RPC.

    # states from which each desk action may take an event; never 'processing' (a worker
    # holds it) nor 'done' (it produced its records: use Link on another event, or the record)
    DESK_STATES = {
        "retry": ("exception", "dead", "ignored", "retry"),
        "ignore": ("exception", "dead", "retry", "pending"),
        "edit_payload": ("exception", "dead", "ignored"),
        "link": ("exception", "dead", "ignored"),
    }

    hub_linkable = fields.Boolean(
        "Can Be Linked", compute="_compute_hub_linkable",
        help="Its event type declares the records it produces, which Link may point it to.",
    )

    @api.depends("system", "event_type")
    def _compute_hub_linkable(self):
        for event in self:
            event.hub_linkable = bool(event._hub_linkable_models())

    @api.model_create_multi
    def create(self, vals_list):
        self._hub_check_engine("create")
        return super().create(vals_list)

    def write(self, vals):
        self._hub_check_engine("write")
        return super().write(vals)

    def unlink(self):
        self._hub_check_engine("unlink")
        return super().unlink()

    def _hub_check_engine(self, operation: str):
        """Refuse a generic create/write/unlink that does not come from server code in sudo
        mode (the engine, the desk actions, the retention, data files)."""
        if not self.env.su:
            raise AccessError(self.env._(
                "Integration events cannot be changed directly (%(operation)s): they change "
                "through the exception desk (Retry, Edit & Retry, Ignore, Link to Record).",
                operation=operation,
            ))

    def _hub_is_desk_user(self) -> bool:
        return self.env.user.has_group("ps_integration_hub.group_hub_finance")

    def message_subscribe(self, partner_ids=None, subtype_ids=None):
        """Followers change no event data, so reading the events is enough for finance, who
        has no write access: it adds a colleague, as assigning them an activity does."""
        if self.env.su or not self._hub_is_desk_user():
            return super().message_subscribe(partner_ids, subtype_ids)
        self.check_access("read")
        events_sudo = self.sudo()
        return super(PsHubEvent, events_sudo).message_subscribe(partner_ids, subtype_ids)

    def message_unsubscribe(self, partner_ids=None):
        if self.env.su or not self._hub_is_desk_user():
            return super().message_unsubscribe(partner_ids)
        self.check_access("read")
        events_sudo = self.sudo()
        return super(PsHubEvent, events_sudo).message_unsubscribe(partner_ids)

    def _hub_desk_events(self, action: str):
        """The events of ``self`` the desk ``action`` may change, locked for it.

        Checks the user's group and read access (the company rule), then reads the state
        under a row lock rather than from the cache: an event a worker is running is locked
        by it and skipped; one a worker or a colleague changed since this transaction began
        fails the lock with a serialization error, which Odoo retries on a fresh snapshot.
        """
        if not self._hub_is_desk_user():
            raise AccessError(self.env._("Only Integration Finance users can work exceptions."))
        self.check_access("read")
        if not self:
            return self
        self.flush_recordset()
        self.env.cr.execute(SQL(
            "SELECT id FROM ps_hub_event WHERE id IN %s AND state IN %s "
            "ORDER BY id FOR UPDATE SKIP LOCKED",
            tuple(self.ids), self.DESK_STATES[action],
        ))
        allowed = {row[0] for row in self.env.cr.fetchall()}
        self.invalidate_recordset()
        return self.filtered(lambda event: event.id in allowed)

    def _hub_desk_refuse(self, action: str):
        labels = dict(self._fields["state"]._description_selection(self.env))
        states = ", ".join(labels[state] for state in self.DESK_STATES[action])
        raise UserError(self.env._(
            "This action applies only to events in these states: %(states)s. An event being "
            "processed or already done cannot be changed from the desk.", states=states,
        ))

    def _hub_requeue(self, action: str, extra=None, audit_after=None):
        """Queue the events again and audit it; the caller checked the desk access and state."""
        audit = [(event, action, {"state": event.state, "reason": event.reason,
                                  **({"payload": event.payload} if audit_after else {})},
                  dict({"state": "pending"}, **(audit_after or {})))
                 for event in self]
        events_sudo = self.sudo()
        events_sudo.write(dict({
            "state": "pending", "attempts": 0, "next_attempt_at": fields.Datetime.now(),
            "error_class": False, "reason": False, "last_error": False, "claim_token": False,
            "done_at": False,
        }, **(extra or {})))
        self.env["ps.hub.audit.log"]._hub_log_many(audit)
        self._hub_trigger_workers()

    def action_retry(self):
        """Queue the events again (bulk-capable: events in other states are left alone)."""
        events = self._hub_desk_events("retry")
        if not events:
            self._hub_desk_refuse("retry")
        events._hub_requeue("retry")
        for event in events:
            event.message_post(body=self.env._("Queued for retry by %s.", self.env.user.name))
        return True

    def action_ignore(self, reason: str):
        """Close the events without processing them; a reason is required (bulk-capable)."""
        if not self._hub_is_desk_user():
            raise AccessError(self.env._("Only Integration Finance users can work exceptions."))
        if not (reason or "").strip():
            raise UserError(self.env._("Say why the event is ignored."))
        events = self._hub_desk_events("ignore")
        if not events:
            self._hub_desk_refuse("ignore")
        audit = [(e, "ignore", {"state": e.state}, {"state": "ignored"}, reason) for e in events]
        events_sudo = events.sudo()
        # done_at starts the retention clock, as for the events the workers ignore
        events_sudo.write({"state": "ignored", "ignore_reason": reason, "claim_token": False,
                           "done_at": fields.Datetime.now()})
        self.env["ps.hub.audit.log"]._hub_log_many(audit)
        for event in events:
            event.message_post(body=self.env._("Ignored: %s", reason))
        return True

    def action_edit_payload_and_retry(self, payload_text: str):
        """Replace the payload by a corrected one (JSON, or the vendor's raw format) and retry."""
        self.ensure_one()
        if not self._hub_desk_events("edit_payload"):
            self._hub_desk_refuse("edit_payload")
        body = (payload_text or "").encode()
        if self.system == "salesforce" or self.event_type == "malformed":
            delivery = parsers.parse_delivery(self.system, body, self.headers or {})
            if len(delivery.events) != 1 or delivery.events[0].parse_error:
                error = delivery.events[0].parse_error if delivery.events else "no event"
                raise UserError(self.env._("The corrected payload still cannot be read: %s", error))
            parsed = delivery.events[0]
            values = {"payload": parsed.payload, "payload_raw": False,
                      "event_type": parsed.event_type, "external_id": parsed.external_id,
                      "ordering_key": parsed.ordering_key}
        else:
            try:
                payload = json.loads(payload_text)
            except ValueError as exc:
                raise UserError(self.env._("The payload is not valid JSON: %s", exc)) from None
            values = {"payload": payload, "payload_raw": False}
        self._hub_requeue("edit_payload", extra=values, audit_after={"payload": values["payload"]})
        self.message_post(body=self.env._("Payload corrected and queued for retry."))
        return True

    def _hub_linkable_models(self) -> dict:
        """{Odoo model: external object type its binding uses, or None} of the records this
        event's type produces: Link may point the event to those only. Modules that handle
        an event type declare it (see ps_quote_to_cash); nothing is linkable by default."""
        self.ensure_one()
        return {}

    def _hub_link_companies(self):
        """The companies a record linked to this event may belong to (besides shared records):
        the event's. A module whose handler makes records in other companies may widen it."""
        self.ensure_one()
        return self.company_id

    def action_link(self, record, binding_model=None):
        """Resolve the event by pointing it to an existing record, and bind the event's
        external id to it under ``binding_model`` when given (the type its event type
        declares for that model). ``record`` is a record or a "model,id" reference."""
        self.ensure_one()
        if not self._hub_desk_events("link"):
            self._hub_desk_refuse("link")
        record = self._hub_link_target(record)
        linkable = self._hub_linkable_models()
        if record._name not in linkable:
            allowed = ", ".join(self.env[m]._description for m in linkable if m in self.env)
            raise UserError(self.env._(
                "A %(type)s event cannot be linked to a %(model)s. It produces: %(allowed)s.",
                type=self.event_type, model=record._description,
                allowed=allowed or self.env._("nothing that can be linked"),
            ))
        if binding_model and binding_model != linkable[record._name]:
            raise UserError(self.env._(
                "A %(model)s linked to a %(type)s event is bound as %(expected)s, not %(given)s.",
                model=record._description, type=self.event_type,
                expected=linkable[record._name] or self.env._("nothing"), given=binding_model,
            ))
        Binding = self.env["ps.hub.binding"]
        Binding._hub_check_target(record, self._hub_link_companies())
        before = {"state": self.state, "res_model": self.res_model, "res_id": self.res_id}
        after = {"state": "done", "res_model": record._name, "res_id": record.id}
        binding = None
        if binding_model and self.external_id:
            bindings_sudo = Binding.sudo()
            previous = bindings_sudo.search([
                ("connector_id", "=", self.connector_id.id), ("external_model", "=", binding_model),
                ("external_id", "=", self.external_id),
            ], limit=1)
            if previous:
                before["binding"] = previous._hub_audit_values()
            binding = bindings_sudo._hub_bind(self.connector_id, binding_model, self.external_id, record)
            after["binding"] = binding._hub_audit_values()
        event_sudo = self.sudo()
        event_sudo.write({"state": "done", "res_model": record._name, "res_id": record.id,
                          "done_at": fields.Datetime.now(), "claim_token": False})
        self.env["ps.hub.audit.log"]._hub_log_many([(self, "link", before, after, None, binding)])
        self.message_post(body=self.env._("Linked to %s.", record.display_name))
        return True

    def _hub_link_target(self, record):
        """``record`` (a record, or a "model,id" reference as RPC sends it) in this env."""
        if isinstance(record, str):
            model, _sep, res_id = record.partition(",")
            if model not in self.env or not res_id.strip().isdigit():
                raise UserError(self.env._("%s is not a record reference.", record))
            record = self.env[model].browse(int(res_id))
        if not isinstance(record, models.BaseModel):
            raise UserError(self.env._("Choose the record to link the event to."))
        record.ensure_one()
        return record.with_env(self.env)

    def action_open_record(self):
        """Open the record this event produced."""
        self.ensure_one()
        record = self._hub_record()
        if not record:
            raise UserError(self.env._("This event has no resulting record."))
        return {"type": "ir.actions.act_window", "res_model": record._name,
                "res_id": record.id, "view_mode": "form"}

    # ------------------------------------------------------------------ retention

    @api.autovacuum
    def _gc_done_events(self):
        """Delete one chunk of done and ignored events older than the retention (days,
        default 90), with their messages, followers, activities and attachments.

        Returns (deleted, remaining) as Odoo's autovacuum expects: it commits after each
        call and calls again while something remains and its cron run has time; a run out
        of time ends "partially done" and the cron starts again soon. So a backlog of any
        size is deleted in committed chunks until none is due. ``remaining`` is 1 while more
        events are due, not a count: counting would scan the table at every chunk.

        The ORM unlink (mail.thread, mail.activity.mixin) removes what refers to the events
        by (res_model, res_id), which a foreign key cannot. Audit rows stay: the foreign key
        sets their event_id to null, and they keep their own connector, event type and
        external id.
        """
        days = self._hub_param("retention_days", 90)
        chunk = max(self._hub_param("retention_chunk_size", 1000), 1)
        cutoff = fields.Datetime.now() - timedelta(days=days)
        self.flush_model(["state", "done_at"])
        self.env.cr.execute(SQL(
            "SELECT id FROM ps_hub_event WHERE state IN ('done', 'ignored') AND done_at < %s "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            cutoff, chunk + 1,
        ))
        ids = [row[0] for row in self.env.cr.fetchall()]
        events_sudo = self.sudo().browse(ids[:chunk])
        events_sudo.unlink()
        return len(events_sudo), int(len(ids) > chunk)
