import json

from odoo import api
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
        with self.registry.cursor() as cr_a, self.registry.cursor() as cr_b:
            env_a = api.Environment(cr_a, api.SUPERUSER_ID, {})
            env_b = api.Environment(cr_b, api.SUPERUSER_ID, {})
            cr_a.execute("SELECT count(*) FROM ps_hub_event")  # worker A's snapshot starts here
            claimed_b = env_b["ps.hub.event"]._hub_claim(10, "worker-b")
            cr_b.commit()
            self.assertEqual(len(claimed_b), 3)
            # A's snapshot still sees them pending: locking them is a serialization failure,
            # which the worker absorbs by claiming again on a fresh snapshot
            with mute_logger("odoo.sql_db"):
                self.assertEqual(env_a["ps.hub.event"]._hub_claim_fresh(10, "worker-a"), [])
            cr_a.execute("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s AND claim_token = 'worker-b'",
                         [self.connector_id])
            self.assertEqual(cr_a.fetchone()[0], 3, "B's claim stands, nothing was claimed twice")
