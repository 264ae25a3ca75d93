import json
import time
from unittest.mock import patch

import psycopg2

from odoo import api, sql_db
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from ..services import parsers
from .common import secret_key_patcher
from .test_worker import hs_event


@tagged("post_install", "-at_install")
class TestClaimConflict(TransactionCase):
    """Two workers on their own cursors and snapshots (committed data, cleaned up after)."""

    def setUp(self):
        super().setUp()
        self.startPatcher(secret_key_patcher())
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            self.connector_id = env["ps.hub.connector"].create({
                "name": "conflict test", "system": "standard", "auth_type": "none"}).id
            body = json.dumps([hs_event(i, i) for i in range(1, 4)]).encode()
            env["ps.hub.event"]._hub_enqueue(env["ps.hub.connector"].browse(self.connector_id),
                                             parsers.parse_delivery("hubspot", body))
        self.addCleanup(self.cleanup)

    def cleanup(self):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM ps_hub_audit_log WHERE connector_id = %s", [self.connector_id])
            cr.execute("DELETE FROM ps_hub_event WHERE connector_id = %s", [self.connector_id])
            cr.execute("DELETE FROM ps_hub_connector WHERE id = %s", [self.connector_id])
            # the enqueue committed triggers of the worker crons, which no cron runs here
            cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id IN (SELECT res_id FROM ir_model_data "
                       "WHERE module = 'ps_integration_hub' AND name LIKE 'ir_cron_process_events_%%')")

    def test_claim_after_another_worker_committed_is_retried_not_failed(self):
        """A's first claim fails on B's commit; on a fresh snapshot it must win the event B left
        (giving up after its tries would return [] too, so [] proves nothing)."""
        ids = self.event_ids()
        Model = type(self.env["ps.hub.engine"])
        claim, tries = Model._hub_claim, []

        def counting_claim(model, limit, token):
            tries.append(token)
            return claim(model, limit, token)
        with self.registry.cursor() as cr_a, self.registry.cursor() as cr_b:
            env_a = api.Environment(cr_a, api.SUPERUSER_ID, {})
            env_b = api.Environment(cr_b, api.SUPERUSER_ID, {})
            cr_a.execute("SELECT count(*) FROM ps_hub_event")  # worker A's snapshot starts here
            claimed_b = env_b["ps.hub.engine"]._hub_claim(2, "worker-b")
            cr_b.commit()
            self.assertEqual(claimed_b, ids[:2])
            # A's snapshot still sees them pending: locking them is a serialization failure,
            # which the worker absorbs by claiming again on a fresh snapshot
            with mute_logger("odoo.sql_db"), patch.object(Model, "_hub_claim", counting_claim):
                self.assertEqual(env_a["ps.hub.engine"]._hub_claim_fresh(10, "worker-a"), ids[2:])
            self.assertEqual(len(tries), 2, "the first try met B's claim, the second won")
            cr_a.execute("SELECT claim_token, count(*) FROM ps_hub_event WHERE connector_id = %s GROUP BY 1",
                         [self.connector_id])
            self.assertEqual(dict(cr_a.fetchall()), {"worker-b": 2, "worker-a": 1},
                             "B's claim stands, nothing was claimed twice")

    # ------------------------------------------------------------ reclaim against real workers

    def test_reclaim_takes_nothing_from_a_live_worker_past_its_lease(self):
        ids = self.event_ids()
        with self.registry.cursor() as cr_worker, self.registry.cursor() as cr_other:
            worker = api.Environment(cr_worker, api.SUPERUSER_ID, {})["ps.hub.engine"]
            other = api.Environment(cr_other, api.SUPERUSER_ID, {})["ps.hub.engine"]
            self.assertEqual(worker._hub_claim(10, "slow-worker"), ids)
            self.age_claims(cr_worker, hours=1)  # the worker claimed them longer ago than the lease
            cr_worker.commit()  # the claim is durable, as in _cron_process_events
            # the worker locks its rows and is still working on them
            cr_worker.execute("SELECT id FROM ps_hub_event WHERE claim_token = 'slow-worker' FOR UPDATE")
            self.assertEqual(other._hub_reclaim_stale(), 0)
            cr_other.commit()
            self.assertEqual(self.states(), dict.fromkeys(ids, ("processing", 1, "slow-worker")))
            cr_worker.rollback()

    def test_reclaim_takes_a_dead_worker_s_events_after_a_backoff(self):
        ids = self.event_ids()
        with self.registry.cursor() as cr_worker:
            worker = api.Environment(cr_worker, api.SUPERUSER_ID, {})["ps.hub.engine"]
            self.assertEqual(worker._hub_claim(10, "dying-worker"), ids)
            self.age_claims(cr_worker, hours=1)
        # the worker's connection locks its rows (as _hub_process_claimed does), then its process dies
        _db, params = sql_db.connection_info_for(self.env.cr.dbname)
        dying = psycopg2.connect(**params)
        dying_pid = dying.get_backend_pid()
        with self.registry.cursor() as cr_other:
            other = api.Environment(cr_other, api.SUPERUSER_ID, {})["ps.hub.engine"]
            try:
                with dying.cursor() as cr:
                    cr.execute("SELECT id FROM ps_hub_event WHERE claim_token = 'dying-worker' FOR UPDATE")
                self.assertEqual(other._hub_reclaim_stale(), 0, "while its connection lives, its rows stay")
                cr_other.rollback()
            finally:
                dying.close()  # PostgreSQL ends its transaction and releases the rows
            # ... once its backend has read the goodbye and ended: not at once on a loaded machine
            self.wait_backend_gone(dying_pid)
            cr_other.rollback()  # a fresh snapshot
            with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_engine"):
                self.assertEqual(other._hub_reclaim_stale(), len(ids))
        self.assertEqual({i: s[:2] for i, s in self.states().items()}, dict.fromkeys(ids, ("retry", 1)))
        with self.registry.cursor() as cr:
            cr.execute("SELECT min(EXTRACT(EPOCH FROM next_attempt_at - (now() AT TIME ZONE 'UTC'))), "
                       "bool_and(reason = 'worker_lost' AND claim_token IS NULL) FROM ps_hub_event "
                       "WHERE connector_id = %s", [self.connector_id])
            wait, lost = cr.fetchone()
        self.assertGreaterEqual(wait, 10, "the connector's backoff (base 30 s, at least half of it), not now")
        self.assertTrue(lost)

    def wait_backend_gone(self, pid: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.registry.cursor() as cr:
            while True:
                cr.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
                if not cr.fetchone():
                    return
                self.assertLess(time.monotonic(), deadline, f"backend {pid} still alive after its connection closed")
                cr.rollback()  # pg_stat_activity is read once per transaction
                time.sleep(0.05)

    def event_ids(self) -> list[int]:
        with self.registry.cursor() as cr:
            cr.execute("SELECT id FROM ps_hub_event WHERE connector_id = %s ORDER BY id", [self.connector_id])
            return [row[0] for row in cr.fetchall()]

    def age_claims(self, cr, hours: int) -> None:
        """Move the claims back in time on the database clock (the lease is 300 s)."""
        cr.execute("UPDATE ps_hub_event SET claimed_at = claimed_at - make_interval(hours => %s) "
                   "WHERE connector_id = %s", [hours, self.connector_id])

    def states(self) -> dict:
        with self.registry.cursor() as cr:
            cr.execute("SELECT id, state, attempts, claim_token FROM ps_hub_event WHERE connector_id = %s",
                       [self.connector_id])
            return {row[0]: tuple(row[1:]) for row in cr.fetchall()}
