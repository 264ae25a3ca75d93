"""The worker engine: claim, run, reclaim and record outcomes of integration events.

The event model stores and shows events; this model works them, as queue_job's runner
works its ``queue.job`` rows. What an outcome means (the next state, the backoff) is
plain Python in ``services/outcome.py``.

Events of one external object (same connector and ordering key) run in their order. An
event waiting behind an earlier active event of its object is ``held``: the claim reads
only events that are not, so the cost of a claim does not grow with the events queued
behind a busy object. Once the head of an object is claimed, the events after it are
claimed with it, and run in order in the same batch.
"""

import logging
import math
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import psycopg2.errors

from odoo import api, fields, models
from odoo.tools import SQL, config

from ..services import budget
from ..services import outcome as oc
from ..services import push as pushes
from ..services.backoff import backoff_delay
from ..services.errors import ConnectorPaused, RateLimited
from .base import INTEGRATION, INTEGRATION_KEY
from .ir_cron import note_more_work, runner_pass_started

_logger = logging.getLogger(__name__)

# seconds one event took in this process's recent runs, per database: sizes the claims
_SECONDS_PER_EVENT: dict[str, float] = {}
ACTIVE = SQL("('pending', 'retry', 'processing')")
# an earlier event of the same object that is still queued or running (inbound and outbound
# events of one object are two queues: a push never waits behind a webhook, nor one behind a push)
EARLIER_ACTIVE = SQL(
    "SELECT 1 FROM ps_hub_event p WHERE p.connector_id = e.connector_id "
    "AND p.ordering_key = e.ordering_key AND p.direction = e.direction AND p.id < e.id "
    "AND p.state IN ('pending', 'retry', 'processing')"
)


# A claim of ``limit`` takes ``limit`` heads, or fewer heads with the events queued behind
# them: an event behind its head takes a tenth of a head's room, since it runs in its head's
# handler batches (merged with it where the handler can) at a fraction of a head's cost. One
# busy object thus drains ten times ``limit`` events a claim, and a claim still reads at most
# ``limit`` heads and ``limit * HEAD_WEIGHT`` rows, whatever waits behind them.
HEAD_WEIGHT = 10


class Claimed(NamedTuple):
    """What the engine needs of a claimed event, read once per batch (no ORM record)."""

    id: int
    connector_id: int
    ordering_key: str | None
    system: str
    event_type: str
    attempts: int
    direction: str = "in"
    external_id: str | None = None

    @property
    def obj(self) -> tuple[int, str, str] | None:
        """The external object whose events run in order, if the event has one: (connector id,
        direction, ordering key), as the ordering of inbound and outbound events is apart."""
        return (self.connector_id, self.direction, self.ordering_key) if self.ordering_key else None


class _Rerun(Exception):
    """A batch ran events of an object after one of its events stayed queued: undo, rerun."""

    def __init__(self, ids: set[int]):
        super().__init__(f"{len(ids)} event(s) ran after an earlier event of their object stayed queued")
        self.ids = ids


class PsHubEngine(models.AbstractModel):
    _name = "ps.hub.engine"
    _description = "Integration Event Engine"

    # ------------------------------------------------------------------ cron entry point

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
        batch_size = limit or self.env["ps.hub.event"]._hub_param("batch_size", 50)
        self._hub_reclaim_stale()
        self._hub_release_lost_holds()
        cron._commit_progress(0)
        engine = self
        if not math.isinf(run.seconds):
            engine = self.with_context(ps_hub_start_until=run.start_until, ps_hub_call_until=run.call_until)
        engine.env["ps.hub.connector"]._hub_probe_due()  # breakers whose cooldown is over
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
            ran = engine._hub_process_claimed(token)
            if ran:
                took = (time.monotonic() - start) / len(ran)
                previous = _SECONDS_PER_EVENT.get(dbname)
                _SECONDS_PER_EVENT[dbname] = took if previous is None else (previous + took) / 2
            more = len(claimed) >= size or len(ran) < len(claimed)
            cron._commit_progress(len(ran), remaining=1 if more else 0)

    # ------------------------------------------------------------------ claim

    @api.model
    def _hub_claim(self, limit: int, token: str) -> list[int]:
        """Mark ready events as processing for ``token``, ``limit`` heads' worth; return their ids.

        The heads come first: ready events no earlier event of their object holds, in the
        order they became due, locked with SKIP LOCKED so that concurrent workers share the
        queue. Each head brings the ready events queued behind it on its object, in order,
        while the claim has room (HEAD_WEIGHT: up to ``limit * HEAD_WEIGHT`` events of one
        busy object). An earlier event in exception or dead does not hold the
        later ones: a person works it on the desk, in their own time, and handlers decide
        from the vendor's current state, not from the order of the messages. The events of a
        connector whose circuit breaker is open or whose vendor asked to wait stay queued.
        """
        self.env["ps.hub.event"].flush_model()
        cr = self.env.cr
        # one statement: the heads (locked, skipping other workers' rows), the events queued
        # behind each head up to the first one not yet due, then the first ``limit`` of them
        # in the order the heads became due, each head followed by its object's events, a head
        # weighing HEAD_WEIGHT and an event behind it 1, up to ``limit`` heads' weight
        cr.execute(SQL(
            """
            WITH heads AS (
                SELECT e.id, e.connector_id, e.direction, e.ordering_key, e.next_attempt_at
                  FROM ps_hub_event e
                 WHERE e.state IN ('pending', 'retry') AND e.held IS NOT TRUE
                   AND e.next_attempt_at <= statement_timestamp() AT TIME ZONE 'UTC'
                   AND e.connector_id <> ALL(ARRAY(%(blocked)s))
                   AND (e.ordering_key IS NULL OR NOT EXISTS (%(earlier)s))
                 ORDER BY e.next_attempt_at, e.id
                 LIMIT %(limit)s
                   FOR UPDATE SKIP LOCKED
            ), candidates AS (
                SELECT h.next_attempt_at AS due, h.id AS head_id, h.id, TRUE AS ready,
                       %(head_weight)s AS weight FROM heads h
                 UNION ALL
                SELECT h.next_attempt_at, h.id, f.id, f.ready, 1
                  FROM heads h CROSS JOIN LATERAL (
                       SELECT f.id, f.next_attempt_at <= statement_timestamp() AT TIME ZONE 'UTC' AS ready
                         FROM ps_hub_event f
                        WHERE f.connector_id = h.connector_id AND f.ordering_key = h.ordering_key
                          AND f.id > h.id AND f.direction = h.direction AND f.state IN ('pending', 'retry')
                        ORDER BY f.id
                        LIMIT %(behind)s) f
                 WHERE h.ordering_key IS NOT NULL
            ), consecutive AS (
                SELECT id, due, head_id, weight,
                       bool_and(ready) OVER (PARTITION BY head_id ORDER BY id) AS all_ready
                  FROM candidates
            ), ranked AS (
                SELECT id, sum(weight) OVER (ORDER BY due, head_id, id) AS position
                  FROM consecutive WHERE all_ready
            )
            UPDATE ps_hub_event SET state = 'processing', claim_token = %(token)s, held = FALSE,
                   claimed_at = statement_timestamp() AT TIME ZONE 'UTC', attempts = attempts + 1
             WHERE id IN (SELECT id FROM ranked WHERE position <= %(room)s)
               AND state IN ('pending', 'retry')
            RETURNING id
            """,
            earlier=EARLIER_ACTIVE, limit=limit, behind=max(limit - 1, 0) * HEAD_WEIGHT, token=token,
            head_weight=HEAD_WEIGHT, room=limit * HEAD_WEIGHT,
            blocked=self.env["ps.hub.connector"]._hub_blocked_sql(),
        ))
        ids = sorted(row[0] for row in cr.fetchall())
        self.env["ps.hub.event"].invalidate_model(["state", "claim_token", "claimed_at", "attempts", "held"])
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

    # ------------------------------------------------------------------ holds

    @api.model
    def _hub_hold_next(self, keys) -> None:
        """Recompute ``held`` for the first queued event of each (connector id, direction, ordering key).

        After events of an object leave the queue (or come back to it), the first one still
        queued is the object's new head: released if nothing earlier is active, held if
        something is. A concurrent change of that row is left to the next run's
        _hub_release_lost_holds.
        """
        keys = sorted({key for key in keys if key[2] is not None})
        if not keys:
            return
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(SQL(
                    """
                    UPDATE ps_hub_event e SET held = EXISTS (%(earlier)s)
                     WHERE e.id IN (
                           SELECT n.id FROM (VALUES %(keys)s) AS k(connector_id, direction, ordering_key)
                            CROSS JOIN LATERAL (
                                  SELECT q.id FROM ps_hub_event q
                                   WHERE q.connector_id = k.connector_id AND q.ordering_key = k.ordering_key
                                     AND q.direction = k.direction AND q.state IN ('pending', 'retry')
                                   ORDER BY q.id LIMIT 1) n)
                       AND e.held IS DISTINCT FROM EXISTS (%(earlier)s)
                    """,
                    earlier=EARLIER_ACTIVE, keys=SQL(", ").join(SQL("(%s, %s, %s)", *key) for key in keys),
                ), log_exceptions=False)
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            _logger.info("ps_hub: the next events of %d object(s) changed meanwhile; the next run releases them",
                         len(keys))
        self.env["ps.hub.event"].invalidate_model(["held"])

    @api.model
    def _hub_release_lost_holds(self) -> int:
        """Release the held events no earlier active event holds any more.

        A delivery stored while the last queued event of its object was finishing in another
        transaction is held with no one left to release it: found here, at each run.
        """
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(SQL(
                    """
                    UPDATE ps_hub_event e SET held = FALSE
                     WHERE e.id IN (
                           SELECT DISTINCT ON (q.connector_id, q.direction, q.ordering_key) q.id
                             FROM ps_hub_event q
                            WHERE q.held AND q.state IN ('pending', 'retry')
                            ORDER BY q.connector_id, q.direction, q.ordering_key, q.id)
                       AND NOT EXISTS (%s)
                    RETURNING e.id
                    """,
                    EARLIER_ACTIVE,
                ), log_exceptions=False)
                released = [row[0] for row in self.env.cr.fetchall()]
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            return 0
        if released:
            _logger.info("ps_hub: released %d held event(s) whose objects were idle: %s", len(released), released)
            self.env["ps.hub.event"].invalidate_model(["held"])
        return len(released)

    # ------------------------------------------------------------------ reclaim

    @api.model
    def _hub_reclaim_stale(self) -> int:
        """Put back events left in processing by a worker that died, after a backoff.

        A live worker holds a row lock on what it processes, so only the rows of a dead
        one can be locked here (SKIP LOCKED), and only once their lease has passed. The
        attempt charged at the claim stands, so an event that kills its worker is dead-
        lettered in the end instead of taking workers down forever; and it waits the
        connector's backoff like any transient failure, not the next run.
        """
        Event = self.env["ps.hub.event"]
        lease = Event._hub_param("lease_seconds", 300)
        Event.flush_model()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(SQL(
                    """
                    SELECT e.id, e.attempts, c.retry_max_attempts, c.retry_backoff_base, c.retry_backoff_cap,
                           e.connector_id, e.direction, e.ordering_key
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
            for event_id, attempts, max_attempts, base, cap, _c, _d, _k in stale
        ]
        # a lost batch may hold several events of one object: all wait again behind the first
        self.env.cr.execute(SQL(
            """
            UPDATE ps_hub_event e
               SET state = v.state, error_class = 'transient', reason = 'worker_lost',
                   last_error = 'The worker processing this event stopped before it finished.',
                   claim_token = NULL, held = e.ordering_key IS NOT NULL AND v.state = 'retry',
                   next_attempt_at = statement_timestamp() AT TIME ZONE 'UTC' + make_interval(secs => v.delay),
                   write_date = now() AT TIME ZONE 'UTC'
              FROM (VALUES %s) AS v(id, state, delay)
             WHERE e.id = v.id
            """,
            SQL(", ").join(rows),
        ))
        self._hub_hold_next((connector_id, direction, key) for *_r, connector_id, direction, key in stale)
        ids = [row[0] for row in stale]
        _logger.warning("ps_hub: reclaimed %d event(s) of a lost worker: %s", len(ids), ids)
        Event.invalidate_model()
        self.env["ps.hub.audit.log"]._hub_log_many([
            (event, "reclaim", {"state": "processing"}, {"state": event.state, "reason": "worker_lost"})
            for event in Event.browse(ids)
        ])
        return len(ids)

    # ------------------------------------------------------------------ run

    @api.model
    def _hub_process_claimed(self, token: str):
        """Lock and process the events claimed under ``token`` (no commit); return those it ran."""
        self.env.cr.execute(SQL(
            "SELECT id, connector_id, ordering_key, system, event_type, attempts, direction, external_id "
            "FROM ps_hub_event "
            "WHERE claim_token = %s AND state = 'processing' ORDER BY id FOR UPDATE", token,
        ))
        rows = [Claimed(*row) for row in self.env.cr.fetchall()]
        ran = self.with_context(ps_hub_batch=True)._hub_run(rows)
        # what the batch's vendor calls told (failures, pauses, quota): once per batch
        self.env["ps.hub.connector"]._hub_flush_health()
        return self.env["ps.hub.event"].browse(ran)

    def _hub_out_of_time(self) -> bool:
        """This run may start no more events (the deadline comes with the worker's context)."""
        return time.monotonic() >= self.env.context.get("ps_hub_start_until", math.inf)

    @api.model
    def _hub_dispatch(self, rows) -> dict:
        """{event id: (event type or None, runs on its connector)} of the claimed ``rows``."""
        EventType = self.env["ps.hub.event.type"].sudo()
        type_ids = EventType._hub_type_ids()
        by_event = {row.id: type_ids.get((row.system, row.event_type)) for row in rows}
        types = {t.id: t for t in EventType.browse(set(filter(None, by_event.values())))}
        connectors = {c.id: c for c in self.env["ps.hub.connector"].sudo().browse({row.connector_id for row in rows})}
        enabled = {}
        if types:
            self.env["ps.hub.connector.event.type"].flush_model(["connector_id", "event_type_id", "enabled"])
            self.env.cr.execute(SQL(
                "SELECT connector_id, event_type_id, enabled FROM ps_hub_connector_event_type "
                "WHERE connector_id IN %s AND event_type_id IN %s",
                tuple(connectors), tuple(types),
            ))
            enabled = {(c, t): on for c, t, on in self.env.cr.fetchall()}
        result = {}
        for row in rows:
            event_type = types.get(by_event[row.id])
            runs = False
            if event_type:
                connector = connectors[row.connector_id]
                runs = enabled.get((connector.id, event_type.id),
                                   connector.environment == "production" or event_type.run_on_sandbox)
            result[row.id] = (event_type, runs)
        return result

    @api.model
    def _hub_run(self, rows: list["Claimed"]) -> list[int]:
        """Run the claimed, locked ``rows`` through their handlers and record every outcome in
        one write; return the ids of the events it ran (not those given back to the queue)."""
        # the handlers write on behalf of the vendor: they may change the fields it owns
        self = self.with_context(tracking_disable=True, mail_notrack=True,  # noqa: PLW0642
                                 **{INTEGRATION_KEY: INTEGRATION})
        dispatch = self._hub_dispatch(rows)
        outcomes, timings = self._hub_echoes(rows), {}
        runnable = []
        for row in rows:
            event_type, runs = dispatch[row.id]
            if row.id in outcomes:
                continue  # an echo of our own push
            if not event_type:
                outcomes[row.id] = oc.ignored(
                    f"No event type is declared for {row.system} events {row.event_type}: "
                    "nothing processes them.", reason="no_handler")
            elif not runs:
                connector = self.env["ps.hub.connector"].sudo().browse(row.connector_id)
                outcomes[row.id] = oc.ignored(
                    f"Event type {event_type.display_name} is off for connector {connector.name}: "
                    "switch it on in the connector's Event Types to process such events.",
                    reason="type_off")
            else:
                runnable.append(row)
        holding = set()  # objects an event of which stays queued: their later events wait
        throttled = {}  # connector id -> seconds its vendor asked to wait (a rate limit answer)
        for event_type, planned in self._hub_plan(runnable, {row.id: dispatch[row.id][0] for row in runnable}):
            if self._hub_out_of_time():
                outcomes.update((row.id, oc.release()) for row in planned)
                continue
            # the vendor refused a call of this connector for its rate limit: its other events of
            # this run wait as long, uncharged, instead of each spending a call on another refusal
            outcomes.update((row.id, oc.release(throttled[row.connector_id]))
                            for row in planned if row.connector_id in throttled)
            chunk = [row for row in planned if row.connector_id not in throttled]
            if not chunk:
                continue
            self._hub_run_chunk(event_type, chunk, outcomes, timings, holding)
            for row in chunk:
                outcome = outcomes[row.id]
                if outcome.kind == oc.FAILED and outcome.reason == "rate_limited":
                    throttled[row.connector_id] = max(throttled.get(row.connector_id, 0),
                                                      outcome.retry_after or oc.RATE_LIMIT_WAIT)
        self._hub_write_outcomes(rows, outcomes, timings, {row.id: dispatch[row.id][0] for row in rows})
        return [row.id for row in rows if outcomes[row.id].kind != oc.RELEASE]

    @api.model
    def _hub_echoes(self, rows) -> dict:
        """{event id: ignored outcome} of the inbound ``rows`` that are echoes of our own pushes.

        A push changes the vendor's object, and the vendor tells us with a webhook: that change
        is ours, and processing it again would at best do nothing and at worst push again, for
        ever. It is recognised here, where events are run, rather than at ingest: the inbound
        route stays a store-and-answer path (no query beyond the insert), and the push whose
        echo a webhook is may still be committing when the webhook arrives, which a worker,
        later, sees done. One query per batch (the recent pushes to the batch's objects), then
        one for the payloads of the events that have one together with the inbound changes of
        their objects processed since those pushes began.

        A change that brings back the pushed value after a real change of it (pushed ``sale``,
        someone set ``cancelled``, then ``sale`` again) is someone's, not our echo: the real
        changes are those processed already (done, not ignored) and the earlier events of the
        batch that are not echoes (the batch is in order per object).
        """
        candidates = [row for row in rows if row.direction == "in" and row.external_id
                      and row.system in pushes.ECHO_SYSTEMS]
        if not candidates:
            return {}
        window = self.env["ps.hub.event"]._hub_param("echo_window_seconds", 600)
        cr = self.env.cr
        cr.execute(SQL(
            """
            SELECT id, connector_id, payload, CASE WHEN state = 'done' THEN started_at ELSE claimed_at END
              FROM ps_hub_event
             WHERE direction = 'out' AND connector_id IN %s AND external_id IN %s
               AND (state = 'processing'
                    OR state = 'done' AND done_at >= statement_timestamp() AT TIME ZONE 'UTC'
                                                      - make_interval(secs => %s))
            """,
            tuple({row.connector_id for row in candidates}), tuple({row.external_id for row in candidates}), window,
        ))
        pushed = defaultdict(list)
        for event_id, connector_id, stored, started_at in cr.fetchall():
            payload = stored if isinstance(stored, dict) else {}
            if isinstance(payload.get("properties"), dict):
                pushed[connector_id].append(pushes.Pushed(
                    event_id, str(payload.get("external_model")), str(payload.get("external_id")),
                    payload["properties"], started_at))
        candidates = [row for row in candidates if row.connector_id in pushed]
        if not candidates:
            return {}
        batch_ids = {row.id for row in candidates}
        # the real changes that matter came after a push began; pushes are recent, so are they
        starts = [p.started_at for found in pushed.values() for p in found]
        since = min(starts) - pushes.ECHO_CLOCK_SKEW if all(starts) else None
        cr.execute(SQL(
            """
            SELECT id, connector_id, system, event_type, payload, occurred_at
              FROM ps_hub_event
             WHERE id IN %s
                OR direction = 'in' AND state = 'done' AND connector_id IN %s AND external_id IN %s
                   AND done_at >= COALESCE(%s, statement_timestamp() AT TIME ZONE 'UTC'
                                                   - make_interval(secs => %s))
            """,
            tuple(row.id for row in candidates), tuple({row.connector_id for row in candidates}),
            tuple({row.external_id for row in candidates}), since, window,
        ))
        inbound, real = {}, defaultdict(list)  # real: connector id -> the changes that were not echoes
        for event_id, connector_id, system, event_type, payload, occurred_at in cr.fetchall():
            inbound[event_id] = (payload, occurred_at)
            if event_id not in batch_ids:
                change = pushes.change_of(system, event_type, payload, occurred_at)
                if change:
                    real[connector_id].append(change)
        echoes = {}
        for row in candidates:
            payload, occurred_at = inbound[row.id]
            change = pushes.change_of(row.system, row.event_type, payload, occurred_at)
            push = change and pushes.echo_of(change, pushed[row.connector_id], real[row.connector_id])
            if change and not push:
                real[row.connector_id].append(change)  # the batch's later events come after it
            if push:
                echoes[row.id] = oc.ignored(
                    f"Echo of our push {push.event_id} ({push.external_model} {push.external_id}: "
                    f"{', '.join(sorted(set(change.values) & set(push.properties)))}, "
                    f"{f'pushed at {push.started_at} UTC' if push.started_at else 'being pushed'}): "
                    "not processed again.",
                    reason="echo")
        return echoes

    @api.model
    def _hub_plan(self, rows, types) -> list:
        """[(event type, rows)] to run in this order: events of one type, at most its batch
        size at a time, and the events of one object in their order across the batches."""
        plan, remaining = [], list(rows)
        while remaining:
            # this round: per object, its events up to the first one of another type
            first_type, closed, this_round, later = {}, set(), [], []
            for row in remaining:
                if row.obj is not None:
                    if row.obj in closed or first_type.setdefault(row.obj, types[row.id]) != types[row.id]:
                        closed.add(row.obj)
                        later.append(row)
                        continue
                this_round.append(row)
            by_type = defaultdict(list)
            for row in this_round:
                by_type[types[row.id]].append(row)
            for event_type, group in by_type.items():
                size = max(event_type.batch_size, 1)
                plan.extend((event_type, group[i:i + size]) for i in range(0, len(group), size))
            remaining = later
        return plan

    @api.model
    def _hub_run_chunk(self, event_type, chunk, outcomes, timings, holding) -> None:
        """Run ``chunk`` through the type's handler in one savepoint, splitting it in halves
        down to single events when it fails, so the good events are done and each bad one
        gets its own outcome. Fills ``outcomes``, ``timings`` and ``holding``."""
        outcomes.update((row.id, oc.release()) for row in chunk if row.obj in holding)
        chunk = [row for row in chunk if row.obj not in holding]
        paused = self._hub_paused_connectors(chunk)
        for row in chunk:
            if row.connector_id in paused:  # its calls would not be made: not started
                outcomes[row.id] = oc.release(paused[row.connector_id])
                if row.obj is not None:
                    holding.add(row.obj)
        chunk = [row for row in chunk if row.connector_id not in paused]
        if not chunk:
            return
        if self._hub_out_of_time():
            outcomes.update((row.id, oc.release()) for row in chunk)
            return
        handler = self.env[event_type.handler_model]
        Event = self.env["ps.hub.event"]
        while chunk:
            start, started_at = time.perf_counter(), fields.Datetime.now()
            try:
                with self.env.cr.savepoint():
                    results = handler.process(Event.browse([row.id for row in chunk]))
                    if not isinstance(results, dict):
                        raise TypeError(f"{event_type.handler_model}.process returned {type(results).__name__}, "
                                        "not {event id: outcome}")
                    found = {}
                    for row in chunk:
                        if row.id in results:
                            found[row.id] = oc.outcome_of(results[row.id], row.attempts)
                        else:
                            found[row.id] = oc.failed(
                                "permanent", "no_outcome",
                                f"The handler {event_type.handler_model} returned no outcome for this event.")
                    late = self._hub_late_events(chunk, found)
                    if any(found[event_id].kind == oc.DONE for event_id in late):
                        raise _Rerun(late)  # their work came before their object's earlier event's
                    found.update((event_id, oc.release()) for event_id in late)
            except _Rerun as rerun:
                outcomes.update((event_id, oc.release()) for event_id in rerun.ids)
                chunk = [row for row in chunk if row.id not in rerun.ids]
                continue
            except ConnectorPaused as exc:  # the vendor asked to wait, or the breaker opened: none was called
                outcomes.update((row.id, oc.release(exc.retry_after)) for row in chunk)
                holding.update(row.obj for row in chunk if row.obj is not None)
                return
            except Exception as exc:  # noqa: BLE001 - split down; a single event is classified
                if isinstance(exc, RateLimited) and len(chunk) > 1:
                    # the batch's call was refused for the rate limit: the batch waits as it is, uncharged
                    outcomes.update((row.id, oc.release(exc.retry_after)) for row in chunk)
                    holding.update(row.obj for row in chunk if row.obj is not None)
                    return
                if len(chunk) > 1:
                    _logger.info("ps_hub: a batch of %d %s events failed (%s), splitting it",
                                 len(chunk), event_type.code, exc)
                    half = len(chunk) // 2
                    self._hub_run_chunk(event_type, chunk[:half], outcomes, timings, holding)
                    self._hub_run_chunk(event_type, chunk[half:], outcomes, timings, holding)
                    return
                found = {chunk[0].id: oc.of_exception(exc, chunk[0].attempts)}
            for event_id, outcome in found.items():
                if outcome.reason == "handler_crash":
                    _logger.error("ps_hub: handler %s crashed on event %s: %s", event_type.handler_model,
                                  event_id, outcome.message)
            duration = (time.perf_counter() - start) * 1000 / len(chunk)
            for row in chunk:
                outcomes[row.id] = found[row.id]
                timings[row.id] = (started_at, duration)
                if found[row.id].holds_its_object and row.obj is not None:
                    holding.add(row.obj)
            return

    @api.model
    def _hub_paused_connectors(self, rows) -> dict[int, float]:
        """{connector id: seconds to wait} of the connectors of ``rows`` that may not call their
        vendor now (breaker open, vendor asked to wait): their events are given back unstarted."""
        paused = {}
        for connector in self.env["ps.hub.connector"].sudo().browse({row.connector_id for row in rows}):
            wait = connector._hub_wait()
            if wait:
                paused[connector.id] = wait[0]
        return paused

    @api.model
    def _hub_late_events(self, chunk, found) -> set[int]:
        """Ids of the events in ``chunk`` that come after an earlier event of their object that
        got an outcome keeping it queued (retry, or given back): they must wait behind it.
        A handler should not run them (ps.hub.handler.process does not); if one was done, the
        batch is undone and run again without them."""
        held, late = set(), set()
        for row in chunk:  # in id order
            if row.obj is None:
                continue
            if row.obj in held:
                late.add(row.id)
            elif found[row.id].holds_its_object:
                held.add(row.obj)
        return late

    # ------------------------------------------------------------------ outcomes

    @api.model
    def _hub_write_outcomes(self, rows, outcomes, timings, types) -> None:
        """One UPDATE and one audit INSERT for the events run, one UPDATE for those given back,
        then the next events of their objects are released or held."""
        Event = self.env["ps.hub.event"]
        Event.flush_model()
        # with its microseconds (fields.Datetime.now() drops them): a retry waits at least what the
        # vendor asked, not up to a second less (a rolling rate-limit window is still full then)
        now = datetime.now(UTC).replace(tzinfo=None)
        policies = {c.id: oc.RetryPolicy(c.retry_max_attempts, c.retry_backoff_base, c.retry_backoff_cap)
                    for c in self.env["ps.hub.connector"].sudo().browse({row.connector_id for row in rows})}
        values_rows, audit, released, delays = [], [], [], {}
        soonest = None  # the earliest retry of this batch due within a worker's minute
        for row in rows:
            outcome = outcomes[row.id]
            if outcome.kind == oc.RELEASE:
                released.append(row.id)
                if outcome.retry_after:
                    delays[row.id] = outcome.retry_after
                    soonest = min(math.inf if soonest is None else soonest, outcome.retry_after)
                continue
            values = oc.settle(outcome, row.attempts, policies[row.connector_id], now)
            if values["state"] == "retry":
                soonest = min(math.inf if soonest is None else soonest,
                              (values["next_attempt_at"] - now).total_seconds())
            started_at, duration = timings.get(row.id, (now, 0.0))
            event_type = types.get(row.id)
            values_rows.append(SQL(
                "(%s, %s, %s, %s, %s, %s, %s, %s::int, %s::timestamp, %s::timestamp, "
                "%s::float, %s, %s, %s::float, %s, %s::int, %s::int, %s::int)",
                row.id, values["state"], values["error_class"], values["reason"],
                values["last_error"], values["ignore_reason"], values["res_model"], values["res_id"],
                values["next_attempt_at"], started_at, duration,
                values["ctx_customer"], values["ctx_reference"], values["ctx_amount"],
                values["ctx_currency"], event_type.id if event_type else None, values["mapping_version_id"],
                values["refund"],
            ))
            audit.append((row.id, "process", {"state": "processing"},
                          {"state": values["state"], "reason": values["reason"]}))
        if values_rows:
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
                       event_type_id = COALESCE(v.event_type_id, e.event_type_id),
                       mapping_version_id = COALESCE(v.mapping_version_id, e.mapping_version_id),
                       attempts = GREATEST(e.attempts - v.refund, 0),
                       claim_token = NULL, held = FALSE,
                       write_date = now() AT TIME ZONE 'UTC', write_uid = %s
                  FROM (VALUES %s) AS v(id, state, error_class, reason, last_error, ignore_reason,
                       res_model, res_id, next_attempt_at, started_at, duration_ms,
                       ctx_customer, ctx_reference, ctx_amount, ctx_currency, event_type_id, mapping_version_id,
                       refund)
                 WHERE e.id = v.id
                """,
                self.env.uid, SQL(", ").join(values_rows),
            ))
        if released:
            self._hub_release(released, delays)
        if soonest is not None and soonest < 60:
            # the cron's own interval is a minute: a retry due sooner (a rate limit's window) wakes it
            Event._hub_trigger_workers(at=now + timedelta(seconds=max(soonest, 0)))
        Event.invalidate_model()
        self._hub_hold_next(row.obj for row in rows if row.obj is not None)
        self.env["ps.hub.audit.log"]._hub_log_many(
            [(Event.browse(event_id), *rest) for event_id, *rest in audit])

    @api.model
    def _hub_release(self, ids: list[int], delays: dict[int, float] | None = None) -> None:
        """Give back claimed events the run did not start: not charged an attempt, and ready at
        once for any worker (or after their ``delays``, in seconds: their connector waits), each
        behind the earlier events of its object."""
        delays = delays or {}
        self.env.cr.execute(SQL(
            """
            UPDATE ps_hub_event e
               SET state = CASE WHEN e.error_class IS NULL THEN 'pending' ELSE 'retry' END,
                   attempts = GREATEST(e.attempts - 1, 0), claim_token = NULL, claimed_at = NULL,
                   next_attempt_at = CASE WHEN v.delay > 0 THEN GREATEST(e.next_attempt_at,
                       statement_timestamp() AT TIME ZONE 'UTC' + make_interval(secs => v.delay))
                       ELSE e.next_attempt_at END,
                   held = e.ordering_key IS NOT NULL, write_date = now() AT TIME ZONE 'UTC'
              FROM (VALUES %s) AS v(id, delay)
             WHERE e.id = v.id AND e.state = 'processing'
            """,
            SQL(", ").join(SQL("(%s, %s::float)", event_id, delays.get(event_id, 0.0)) for event_id in ids),
        ))
        _logger.info("ps_hub: %d event(s) given back unstarted", len(ids))
