import base64
import inspect
from datetime import datetime, timedelta
from types import SimpleNamespace
from unittest.mock import patch

from freezegun import freeze_time

from odoo.tests import tagged
from odoo.tools import SQL

from odoo.addons.base.models import ir_autovacuum

from ..services.errors import BusinessError
from .common import HubCase, patched_handler
from .test_worker import hs_event


@tagged("post_install", "-at_install")
class TestRetention(HubCase):
    """Done and ignored events are deleted after ``retention_days`` (90), whole."""

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].set_param("ps_integration_hub.retention_days", "90")
        self.Event = self.env["ps.hub.event"]

    def deliver(self, *bodies, outcome="done"):
        """Events of a delivery, processed by a handler that ends them in ``outcome``."""
        events, _dup = self.enqueue(self.hubspot, list(bodies))

        def handler(event):
            if outcome == "exception":
                raise BusinessError("SKU missing", reason="missing_product")
        with patched_handler(self.env, handler):
            self.process()
        self.assertEqual(set(events.mapped("state")), {outcome})
        return events

    def days_later(self, days):
        return freeze_time(datetime.now() + timedelta(days=days))

    def gc_until_done(self):
        """Call the cleanup as Odoo's autovacuum does: again while it says more remains."""
        calls = []
        while not calls or calls[-1][1]:
            calls.append(self.Event._gc_done_events())
            self.assertLess(len(calls), 50)
        return calls

    def mail_rows(self, events):
        counts = {}
        for table, model_column in (("mail_message", "model"), ("mail_followers", "res_model"),
                                    ("mail_activity", "res_model"), ("ir_attachment", "res_model")):
            self.env.cr.execute(SQL(
                "SELECT count(*) FROM %s WHERE %s = 'ps.hub.event' AND res_id IN %s",
                SQL.identifier(table), SQL.identifier(model_column), tuple(events.ids),
            ))
            counts[table] = self.env.cr.fetchone()[0]
        return counts

    def test_done_and_ignored_events_go_with_their_messages_followers_and_activities(self):
        done = self.deliver(hs_event(1, 1))
        no_handler, _dup = self.enqueue(self.hubspot, [dict(hs_event(2, 2), subscriptionType="contact.creation")])
        self.process()
        self.assertEqual(no_handler.state, "ignored")
        exception = self.deliver(hs_event(3, 3, value="broken"), outcome="exception")
        desk_ignored = self.deliver(hs_event(4, 4, value="broken"), outcome="exception")
        desk = (done | desk_ignored | exception).with_user(self.user_finance)
        desk_ignored.with_user(self.user_finance).action_ignore("test deal")
        for event in desk:
            event.message_post(body="looked at it", attachments=[("note.txt", b"checked")])
            event.message_subscribe(partner_ids=self.user_finance.partner_id.ids)
            event.activity_schedule("mail.mail_activity_data_todo", user_id=self.user_manager.id)
        self.env["ir.attachment"].create({"name": "raw.bin", "res_model": "ps.hub.event", "res_id": done.id,
                                          "datas": base64.b64encode(b"raw")})
        gone = done | no_handler | desk_ignored
        self.assertTrue(all(self.mail_rows(gone).values()), self.mail_rows(gone))

        with self.days_later(89):
            self.assertEqual(self.gc_until_done(), [(0, 0)])
        self.assertEqual(len((gone | exception).exists()), 4)
        with self.days_later(91):
            self.assertEqual(self.gc_until_done(), [(3, 0)])
        self.assertFalse(gone.exists())
        self.assertEqual(exception.exists(), exception, "an open exception is never deleted")
        self.assertEqual(self.mail_rows(gone), dict.fromkeys(self.mail_rows(gone), 0))
        self.assertTrue(all(self.mail_rows(exception).values()))

    def test_audit_rows_outlive_their_event(self):
        event = self.deliver(hs_event(5, 55), outcome="exception")
        event.with_user(self.user_finance).action_ignore("duplicate of an order entered by hand")
        event_id = event.id
        with self.days_later(91):
            self.gc_until_done()
        self.assertFalse(event.exists())
        logs = self.env["ps.hub.audit.log"].search([("connector_id", "=", self.hubspot.id),
                                                   ("external_id", "=", "55")])
        self.assertEqual(sorted(logs.mapped("action")), ["ignore", "process"])
        for log in logs:
            self.assertEqual((log.event_id.id, log.connector_id, log.company_id, log.event_type),
                             (False, self.hubspot, self.company, "deal.propertyChange"))
        self.env.cr.execute(SQL("SELECT count(*) FROM ps_hub_audit_log WHERE event_id = %s", event_id))
        self.assertEqual(self.env.cr.fetchone()[0], 0)

    def test_desk_ignored_event_is_deleted_after_the_retention(self):
        event = self.deliver(hs_event(6, 6, value="broken"), outcome="exception")
        event.with_user(self.user_finance).action_ignore("test deal")
        self.assertTrue(event.done_at, "ignoring starts the retention clock")
        with self.days_later(91):
            self.gc_until_done()
        self.assertFalse(event.exists())

    def test_retried_event_restarts_the_clock(self):
        event = self.deliver(hs_event(7, 7, value="broken"), outcome="exception")
        event.with_user(self.user_finance).action_ignore("later")
        event.with_user(self.user_finance).action_retry()
        self.assertEqual((event.state, event.done_at), ("pending", False))

    def test_a_backlog_is_deleted_in_chunks_until_done(self):
        self.env["ir.config_parameter"].set_param("ps_integration_hub.retention_chunk_size", "3")
        events = self.deliver(*[hs_event(100 + i, 100 + i) for i in range(10)])
        with self.days_later(91):
            self.assertEqual(self.gc_until_done(), [(3, 1), (3, 1), (3, 1), (1, 0)])
        self.assertFalse(events.exists())

    def run_autovacuum(self, time_left):
        """Run Odoo's autovacuum job on the hub's cleanup only; ``time_left`` answers each
        _commit_progress (the cron's remaining time), which here commits nothing."""
        progress = []

        def commit_progress(cron, processed=0, *, remaining=None, deactivate=False):
            progress.append(remaining)
            return time_left(len(progress))

        def getmembers(cls, predicate=None):
            if getattr(cls, "_name", None) != "ps.hub.event":
                return []
            return [(name, func) for name, func in inspect.getmembers(cls, predicate)
                    if name == "_gc_done_events"]
        with patch.object(type(self.env["ir.cron"]), "_commit_progress", commit_progress), \
                patch.object(ir_autovacuum, "inspect", SimpleNamespace(getmembers=getmembers)):
            self.env["ir.autovacuum"].with_context(cron_id=1)._run_vacuum_cleaner()
        return progress

    def test_the_autovacuum_deletes_until_done_within_its_time(self):
        self.env["ir.config_parameter"].set_param("ps_integration_hub.retention_chunk_size", "3")
        events = self.deliver(*[hs_event(200 + i, 200 + i) for i in range(10)])
        with self.days_later(91):
            # out of time after two chunks: the run stops, telling the cron that work remains
            progress = self.run_autovacuum(lambda calls: 60.0 if calls < 5 else 0.0)
            self.assertEqual(len(events.exists()), 4)
            self.assertEqual(progress[-1], 1, "partially done: the cron runs again soon")
            # the next run goes on until nothing is due
            self.run_autovacuum(lambda calls: 60.0)
        self.assertFalse(events.exists())
