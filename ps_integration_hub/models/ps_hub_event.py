import json
import logging
import time
import uuid
from datetime import timedelta

import psycopg2.errors

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..services import parsers
from ..services import push as pushes
from .ps_hub_engine import EARLIER_ACTIVE

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
_LAST_WAKEUP = 0.0  # monotonic time this process last woke the cron runners


class _Many2oneWithoutForeignKey(fields.Many2one):
    """A many2one whose column has no foreign key constraint.

    Every insert into a table checks each of its foreign keys with a ``SELECT ... FOR KEY
    SHARE`` of the referenced row: for an event, the connector, company and event type rows
    that every delivery of that connector (and type) shares, so that concurrent deliveries
    lock the same rows (PostgreSQL then creates a multixact per new locker). Measured on a
    100-event delivery: 1.6 of the 3.9 ms of its INSERT for the connector's key alone
    (bench/README.md). The ORM keeps the integrity instead: a connector with events cannot
    be deleted (PsHubConnector._unlink_except_events), a company with a connector cannot be
    (the connector's own foreign key), and deleting an event type empties the type of its
    events first (PsHubEventType.unlink, what ``ondelete="set null"`` did in the database;
    it is the path a module uninstall takes too).
    """

    def update_db_foreign_key(self, model, column):
        return


class PsHubEvent(models.Model):
    _name = "ps.hub.event"
    _description = "Integration Event"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True
    _mail_post_access = "read"

    connector_id = _Many2oneWithoutForeignKey(
        "ps.hub.connector", required=True, ondelete="restrict", readonly=True,
    )
    company_id = _Many2oneWithoutForeignKey("res.company", required=True, readonly=True)
    system = fields.Selection(related="connector_id.system", store=True)
    direction = fields.Selection(
        [("in", "Inbound"), ("out", "Outbound")], required=True, default="in", readonly=True,
    )
    event_type = fields.Char(required=True, readonly=True, help="The type as the vendor names it.")
    event_type_id = _Many2oneWithoutForeignKey(
        "ps.hub.event.type", "Type", readonly=True, ondelete="set null",
        help="The declared event type that processes it; empty when no installed module declares one.",
    )
    external_id = fields.Char(index=True, readonly=True)
    idempotency_key = fields.Char(required=True, readonly=True)
    ordering_key = fields.Char(readonly=True)
    correlation_id = fields.Char(readonly=True, help="Shared by the events of one delivery.")
    payload = fields.Json(readonly=True)
    payload_raw = fields.Text("Raw Payload", readonly=True, help="The body as received when it could not be parsed.")
    payload_pretty = fields.Text("Payload (formatted)", compute="_compute_payload_pretty")
    headers = fields.Json(readonly=True)
    state = fields.Selection(STATES, required=True, default="pending", readonly=True, tracking=True)
    attempts = fields.Integer(readonly=True)
    next_attempt_at = fields.Datetime(readonly=True, default=fields.Datetime.now)
    claimed_at = fields.Datetime(readonly=True)
    claim_token = fields.Char(readonly=True, copy=False)
    held = fields.Boolean(
        "Waits Behind Earlier Event", readonly=True, copy=False,
        help="An earlier event of the same external object is still queued or running: this one "
             "runs after it. Claims skip held events, so a busy object does not slow the queue.",
    )
    error_class = fields.Selection(
        [("transient", "Transient"), ("permanent", "Permanent"), ("business", "Business")],
        readonly=True,
    )
    reason = fields.Char(readonly=True, help="Short code of what went wrong, to group by.")
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
    mapping_version_id = fields.Many2one(
        "ps.hub.mapping", "Mapping Version", readonly=True, index="btree_not_null", ondelete="restrict",
        help="The version of the field mapping that read this event's values.",
    )

    _idempotency_unique = models.UniqueIndex("(connector_id, direction, idempotency_key)")
    # the predicate is the claim's own WHERE (inbound and outbound events share the workers), so
    # that the claim (ORDER BY next_attempt_at, id LIMIT n) reads this index in order whatever the
    # statistics say: a backlog queued faster than autovacuum analyzes the table otherwise got a
    # plan that filters and sorts all of it (it did while the claim filtered on a column the
    # index did not). Held events are out of it: those queued behind a busy object cost nothing.
    _claim_idx = models.Index(
        "(next_attempt_at, id) WHERE state IN ('pending', 'retry') AND held IS NOT TRUE"
    )
    _ordering_idx = models.Index(
        "(connector_id, ordering_key, id) WHERE state IN ('pending', 'retry', 'processing')"
    )
    _stale_idx = models.Index("(claimed_at) WHERE state = 'processing'")
    # the desk's default list (open exceptions, newest first); the retention walks the primary key
    _attention_idx = models.Index("(id) WHERE state IN ('exception', 'dead')")
    # Every index costs each event an entry at ingest and again at its claim and its outcome
    # (those updates change indexed columns, so they are never HOT): the table keeps the ones
    # above, the unique key (which also serves lookups by connector) and external_id for the
    # desk's search, and no index on columns only grouped by (state, reason, types, company).

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

    @api.model
    def _hub_forget(self, field_name: str, ids) -> None:
        """Empty the many2one ``field_name`` of the events that refer to ``ids`` (records being
        deleted), in one UPDATE: the events may be many. What ``ondelete="set null"`` does in the
        database, for a column that has no foreign key (event_type_id) or whose key restricts
        (mapping_version_id, on a module uninstall)."""
        if not ids:
            return
        self.flush_model([field_name])
        self.env.cr.execute(SQL("UPDATE ps_hub_event SET %s = NULL WHERE %s IN %s",
                                SQL.identifier(field_name), SQL.identifier(field_name), tuple(ids)))
        self.invalidate_model([field_name])

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
        type_ids = self.env["ps.hub.event.type"]._hub_type_ids()
        system = connector.system
        # The events go as one JSON array of rows, one parameter: as 19 parameters per event,
        # quoting them one by one was most of the Python time of a 100-event delivery. A row:
        # 0 event_type, 1 event_type_id, 2 external_id, 3 idempotency_key, 4 ordering_key,
        # 5 payload, 6 payload_raw, 7 state, 8 error_class, 9 reason, 10 last_error,
        # 11 occurred_at (naive UTC, ISO 8601), 12 whether it waits behind a queued event of its object,
        # 13 where the payload is in the body (ParsedEvent.payload_index), then 5 is null
        body = delivery.json_text
        rows = []
        for ev in events:
            malformed = ev.parse_error is not None
            in_body = body is not None and ev.payload_index is not None
            rows.append((
                ev.event_type[:256], type_ids.get((system, ev.event_type)), ev.external_id,
                ev.idempotency_key, ev.ordering_key, None if in_body else ev.payload,
                ev.raw if malformed else None,
                "exception" if malformed else "pending",
                "permanent" if malformed else None,
                "malformed" if malformed else None,
                ev.parse_error, ev.occurred_at.isoformat() if ev.occurred_at else None,
                not malformed and ev.ordering_key is not None,
                ev.payload_index if in_body else None,
            ))
        cron_ids = self._hub_worker_cron_ids()
        # One round trip: the INSERT, and which worker crons have no due trigger yet (the
        # statement after it in _hub_trigger_workers otherwise)
        self.env.cr.execute(SQL(
            "WITH ins AS (INSERT INTO ps_hub_event (connector_id, system, company_id, direction, event_type, "
            "event_type_id, external_id, idempotency_key, ordering_key, correlation_id, payload, payload_raw, "
            "headers, state, error_class, reason, last_error, occurred_at, attempts, "
            "next_attempt_at, received_at, held, create_uid, write_uid, create_date, write_date) "
            "SELECT %s, %s, %s, 'in', r->>0, (r->>1)::int, r->>2, r->>3, r->>4, %s, "
            "CASE WHEN r->>13 IS NULL THEN NULLIF(r->5, 'null') WHEN (r->>13)::int < 0 THEN b.j "
            "ELSE b.j -> ((r->>13)::int) END, "
            "r->>6, %s::jsonb, r->>7, r->>8, r->>9, r->>10, (r->>11)::timestamp, 0, "
            "now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', "
            # an event of an object that already has one queued or running waits behind it; OFFSET 0
            # keeps this one index probe per event: PostgreSQL may otherwise turn the EXISTS into a
            # hashed scan of every queued event of the connector (it did on a table not analyzed yet)
            "CASE WHEN (r->>12)::boolean THEN EXISTS (SELECT 1 FROM ps_hub_event p WHERE p.connector_id = %s "
            "AND p.ordering_key = r->>4 AND p.direction = 'in' AND p.state IN ('pending', 'retry', 'processing') "
            "OFFSET 0) ELSE FALSE END, %s, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' "
            # ids in the order of the delivery: the order of the events of one object
            "FROM (SELECT %s::jsonb AS j) b, jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n "
            "ON CONFLICT (connector_id, direction, idempotency_key) DO NOTHING "
            "RETURNING id, state) "
            "SELECT id, state, (%s) FROM ins",
            connector.id, system, connector.company_id.id, correlation_id, headers_json, connector.id,
            uid, uid, body, json.dumps(rows), self._hub_untriggered_sql(cron_ids),
        ))
        inserted = self.env.cr.fetchall()
        new_ids = [row[0] for row in inserted]
        keys = [ev.ordering_key for ev in events if ev.ordering_key is not None]
        if len(keys) > len(set(keys)) and new_ids:
            # one statement does not see its own rows: the later events of an object that comes
            # more than once in this delivery wait behind its first
            self.env.cr.execute(SQL(
                "UPDATE ps_hub_event e SET held = EXISTS (SELECT 1 FROM ps_hub_event p "
                "WHERE p.connector_id = e.connector_id AND p.ordering_key = e.ordering_key "
                "AND p.direction = 'in' AND p.id < e.id AND p.state IN ('pending', 'retry', 'processing')) "
                "WHERE e.id IN %s AND e.ordering_key IS NOT NULL AND e.state = 'pending'",
                tuple(new_ids),
            ))
        if any(state == "pending" for _id, state, _crons in inserted):
            self._hub_trigger_workers(untriggered=inserted[0][2] or [])
        return new_ids, len(events) - len(new_ids)

    @api.model
    def _hub_worker_cron_ids(self) -> list[int]:
        IrModelData = self.env["ir.model.data"]
        return [cron_id for cron_id in (IrModelData._xmlid_to_res_id(x, raise_if_not_found=False)
                                        for x in WORKER_CRONS) if cron_id]

    @api.model
    def _hub_untriggered_sql(self, cron_ids: list[int]) -> SQL:
        """The ids (an array, NULL for none) of the active crons of ``cron_ids`` that have no due trigger."""
        return SQL(
            "SELECT array_agg(c.id) FROM ir_cron c WHERE c.id = ANY(%s) AND c.active AND NOT EXISTS ("
            "SELECT 1 FROM ir_cron_trigger t WHERE t.cron_id = c.id "
            "AND t.call_at <= statement_timestamp() AT TIME ZONE 'UTC')",
            cron_ids,
        )

    @api.model
    def _hub_trigger_workers(self, at=None, untriggered=None):
        """Wake the worker crons (after commit) instead of waiting for their next run.

        A cron that already has a due trigger gets no second one: under load every delivery
        would otherwise add a row the cron deletes unread. The runners are still woken, at
        most twice a second per process (on a connection to the 'postgres' database that the
        process keeps), in case one skipped the due trigger while the job ran elsewhere.
        ``untriggered``: the crons without a due trigger, when the caller already read them
        (_hub_untriggered_sql, in the statement that queued the events).
        """
        Cron = self.env["ir.cron"].sudo()
        if at is not None:
            for cron in Cron.browse(self._hub_worker_cron_ids()):
                cron._trigger(at)
            return
        if untriggered is None:
            cron_ids = self._hub_worker_cron_ids()
            if not cron_ids:
                return
            self.env.cr.execute(self._hub_untriggered_sql(cron_ids))
            untriggered = self.env.cr.fetchone()[0] or []
        for cron in Cron.browse(untriggered):
            cron._trigger()  # notifies the runners after commit
        global _LAST_WAKEUP  # noqa: PLW0603
        if not untriggered and time.monotonic() - _LAST_WAKEUP > 0.5:
            _LAST_WAKEUP = time.monotonic()
            self.env.cr.postcommit.add(Cron._hub_notify_runners)

    # ------------------------------------------------------------------ outbox

    @api.model
    def _hub_enqueue_push(self, connector, records, external_model: str, values_list: list[dict], *,
                          external_ids: list[str] | None = None, versions: list[str] | None = None,
                          mapping=None):
        """Queue pushes of ``records`` (their vendor properties ``values_list``, one dict per
        record) to the external objects of type ``external_model`` bound to them on
        ``connector``; return the outbound events that now carry them.

        A transactional outbox: the events are rows written in the caller's transaction, pushed
        by the workers after it commits; nothing here calls the vendor. Per record and object:

        - the same version again (``versions``, by default the record's write date and the
          values' digest) adds nothing: that push is queued or was made;
        - a push of the record to the object still queued, first in its object's queue and not
          claimed by a worker, takes the latest values instead of a second push queued behind it;
        - otherwise a new event is queued, behind the object's earlier pushes (ordering key); the
          worker that claims them sends the consecutive pushes of one object in one call of
          their latest values (the handlers merge them), so they collapse at send time.

        The object is ``external_ids`` when given, else the record's binding (a partner's
        first one); a record bound to no such object is left out (nothing to push it to).
        ``mapping``: the outbound mapping version that gave the values, recorded on the events.
        """
        connector_sudo = connector.sudo()
        connector_sudo.ensure_one()
        if external_ids is None:
            external_ids = self._hub_bound_external_ids(connector_sudo, records, external_model)
        entries = {}  # idempotency key -> entry; one per record, object and version
        for index, record in enumerate(records):
            external_id = external_ids[index]
            if not external_id:
                continue
            values = values_list[index]
            written = record.write_date if "write_date" in record._fields else None
            version = versions[index] if versions else pushes.default_version(written, values)
            reference = f"{record._name},{record.id}"
            key = pushes.push_key(external_model, external_id, reference, version)
            entries[key] = {
                "key": key, "ordering_key": pushes.ordering_key(external_model, str(external_id)),
                "external_id": str(external_id), "res_model": record._name, "res_id": record.id,
                "payload": {"external_model": external_model, "external_id": str(external_id),
                            "record": reference, "version": version, "properties": values},
            }
        if not entries:
            return self.browse()
        cr = self.env.cr
        self.flush_model()
        cr.execute(SQL(
            "SELECT idempotency_key, id FROM ps_hub_event WHERE connector_id = %s AND direction = 'out' "
            "AND idempotency_key IN %s", connector_sudo.id, tuple(entries),
        ))
        known = dict(cr.fetchall())
        result_ids = list(known.values())
        entries = {key: entry for key, entry in entries.items() if key not in known}
        # a change of a record before its queued push ran: the latest one wins, in one push
        for key, event_id, queued in self._hub_collapsible(connector_sudo, entries.values()):
            entry = entries[key]
            payload = dict(entry["payload"], properties=pushes.merge_properties(
                (queued or {}).get("properties"), entry["payload"]["properties"]))
            try:
                with cr.savepoint(flush=False):
                    cr.execute(SQL(
                        "UPDATE ps_hub_event SET idempotency_key = %s, payload = %s::jsonb, "
                        "mapping_version_id = COALESCE(%s, mapping_version_id), "
                        "write_date = now() AT TIME ZONE 'UTC', write_uid = %s WHERE id = %s",
                        key, json.dumps(payload, default=str), mapping.id if mapping else None,
                        self.env.uid or None, event_id,
                    ), log_exceptions=False)
            except psycopg2.errors.UniqueViolation:
                continue  # another transaction queued this very version meanwhile
            result_ids.append(event_id)
            del entries[key]
        if entries:
            result_ids += self._hub_insert_pushes(connector_sudo, external_model, list(entries.values()),
                                                  mapping=mapping)
        self.invalidate_model(["idempotency_key", "payload", "mapping_version_id"])
        return self.browse(sorted(set(result_ids)))

    @api.model
    def _hub_bound_external_ids(self, connector, records, external_model: str) -> list[str | None]:
        """The external id bound to each of ``records`` (None for an unbound one): one search."""
        bindings_sudo = self.env["ps.hub.binding"].sudo().search([
            ("connector_id", "=", connector.id), ("external_model", "=", external_model),
            ("res_model", "=", records._name), ("res_id", "in", records.ids),
        ], order="id")
        bound = {}
        for binding in bindings_sudo:
            bound.setdefault(binding.res_id, binding.external_id)  # a partner's first binding
        return [bound.get(record.id) for record in records]

    @api.model
    def _hub_collapsible(self, connector, entries) -> list[tuple[str, int, dict]]:
        """[(entry key, queued event id, its payload)]: for each entry, the push of the same record
        to the same object waiting first in its object's queue for a worker, locked for this
        transaction.

        The row stays locked until the caller's transaction ends, so only a push no worker
        statement waits on is taken: not one a worker claimed or is claiming (locked: skipped),
        nor a held one, which a worker updates without skipping locks when it releases it or
        claims it behind its object's head. Those get a push of their own behind them, merged at
        send time. Under REPEATABLE READ, a row a worker claimed and committed after this
        transaction's snapshot began cannot be locked either: then every entry gets its own
        push, which is correct, only not collapsed in the table.
        """
        by_object = {(e["ordering_key"], e["res_model"], e["res_id"]): e["key"] for e in entries}
        if not by_object:
            return []
        cr = self.env.cr
        try:
            with cr.savepoint(flush=False):
                # (FOR UPDATE cannot go with DISTINCT ON: the latest of each is picked below)
                cr.execute(SQL(
                    """
                    SELECT ordering_key, res_model, res_id, id, payload
                      FROM ps_hub_event
                     WHERE connector_id = %s AND direction = 'out' AND ordering_key IN %s
                       AND state IN ('pending', 'retry') AND claim_token IS NULL AND held IS NOT TRUE
                     ORDER BY id
                       FOR UPDATE SKIP LOCKED
                    """,
                    connector.id, tuple({key for key, _m, _i in by_object}),
                ), log_exceptions=False)
                rows = cr.fetchall()
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            return []
        latest = {}
        for okey, model, res_id, event_id, payload in rows:  # in id order: the last one stays
            if (okey, model, res_id) in by_object:
                latest[okey, model, res_id] = (by_object[(okey, model, res_id)], event_id, payload)
        return list(latest.values())

    @api.model
    def _hub_insert_pushes(self, connector, external_model: str, entries: list[dict], mapping=None) -> list[int]:
        """Insert new outbound events for ``entries``; each waits behind its object's active ones."""
        code = f"{external_model}.push"
        type_id = self.env["ps.hub.event.type"]._hub_type_ids().get((connector.system, code))
        uid = self.env.uid or None
        rows = [(entry["key"], entry["ordering_key"], entry["external_id"], entry["res_model"],
                 entry["res_id"], entry["payload"]) for entry in entries]
        self.env.cr.execute(SQL(
            "INSERT INTO ps_hub_event (connector_id, system, company_id, direction, event_type, event_type_id, "
            "external_id, idempotency_key, ordering_key, correlation_id, payload, res_model, res_id, state, "
            "attempts, next_attempt_at, received_at, held, mapping_version_id, create_uid, write_uid, "
            "create_date, write_date) "
            "SELECT %s, %s, %s, 'out', %s, %s, r->>2, r->>0, r->>1, %s, r->5, r->>3, (r->>4)::int, 'pending', 0, "
            "now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', "
            "EXISTS (SELECT 1 FROM ps_hub_event p WHERE p.connector_id = %s AND p.direction = 'out' "
            "AND p.ordering_key = r->>1 AND p.state IN ('pending', 'retry', 'processing') OFFSET 0), "
            "%s, %s, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n "
            "ON CONFLICT (connector_id, direction, idempotency_key) DO NOTHING RETURNING id",
            connector.id, connector.system, connector.company_id.id, code, type_id, uuid.uuid4().hex,
            connector.id, mapping.id if mapping else None, uid, uid, json.dumps(rows, default=str),
        ))
        new_ids = [row[0] for row in self.env.cr.fetchall()]
        keys = [entry["ordering_key"] for entry in entries]
        if len(keys) > len(set(keys)) and new_ids:
            # one statement does not see its own rows: later pushes of one object wait behind its first
            self.env.cr.execute(SQL(
                "UPDATE ps_hub_event e SET held = EXISTS (%s) WHERE e.id IN %s",
                EARLIER_ACTIVE, tuple(new_ids),
            ))
        if new_ids:
            self._hub_trigger_workers()
        return new_ids

    # ------------------------------------------------------------------ settings

    @api.model
    def _hub_param(self, name: str, default: int) -> int:
        value = self.env["ir.config_parameter"].sudo().get_param(f"ps_integration_hub.{name}")
        try:
            return int(value) if value else default
        except ValueError:
            return default

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

    @api.depends("system", "event_type", "event_type_id")
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
        values = dict({
            "state": "pending", "attempts": 0, "next_attempt_at": fields.Datetime.now(),
            "error_class": False, "reason": False, "last_error": False, "claim_token": False,
            "done_at": False,
        }, **(extra or {}))
        if "event_type" in values:
            self.ensure_one()
            values["event_type_id"] = self.env["ps.hub.event.type"]._hub_type_ids().get(
                (self.system, values["event_type"]), False)
        events_sudo.write(values)
        self._hub_hold_objects()
        self.env["ps.hub.audit.log"]._hub_log_many(audit)
        self._hub_trigger_workers()

    def _hub_hold_objects(self):
        """Recompute which queued events of these events' objects wait behind another, after a
        desk action put events back in the queue or took them out of it."""
        self.flush_recordset()
        keys = {(event.connector_id.id, event.direction, event.ordering_key)
                for event in self if event.ordering_key}
        if keys:
            self.env.cr.execute(SQL(
                """
                UPDATE ps_hub_event e SET held = EXISTS (%s)
                 WHERE (e.connector_id, e.direction, e.ordering_key) IN %s
                   AND e.state IN ('pending', 'retry')
                """,
                EARLIER_ACTIVE, tuple(keys),
            ))
            self.invalidate_model(["held"])

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
        events._hub_hold_objects()
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
        if self.event_type == "malformed" or self.connector_id._hub_desk_reparses_payload():
            delivery = self.connector_id._hub_parse_delivery(body, self.headers or {})
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
        event's type produces (declared on the event type): Link may point the event to those
        only. Nothing is linkable for an event no declared type processes."""
        self.ensure_one()
        event_type = self.event_type_id or self.env["ps.hub.event.type"].browse(
            self.env["ps.hub.event.type"]._hub_type_ids().get((self.system, self.event_type)))
        event_type = event_type.sudo()
        if not event_type or not event_type.res_model:
            return {}
        return {event_type.res_model: event_type.binding_model or None}

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
