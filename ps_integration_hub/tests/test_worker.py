from datetime import timedelta

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..services.errors import BusinessError, IgnoreEvent, TransientError
from .common import HubCase, patched_handler


def hs_event(event_id, object_id=1, value="closedwon", prop="dealstage"):
    return {"eventId": event_id, "subscriptionType": "deal.propertyChange", "objectId": object_id,
            "propertyName": prop, "propertyValue": value, "occurredAt": 1763632800000}


@tagged("post_install", "-at_install")
class TestWorker(HubCase):
    def with_handler(self, handler, key=("hubspot", "deal.propertyChange")):
        return patched_handler(self.env, handler, key)

    def test_done_with_result(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(1, 10), hs_event(2, 11)])

        def handler(event):
            event._hub_note_context(customer="Northwind", reference="Deal", amount=5.0, currency="EUR")
            return self.env["res.partner"].create({"name": f"from {event.external_id}"})
        with self.with_handler(handler):
            self.process()
        self.assertEqual(events.mapped("state"), ["done", "done"])
        self.assertEqual({e._hub_record().name for e in events}, {"from 10", "from 11"})
        self.assertEqual(events.mapped("attempts"), [1, 1])
        self.assertEqual(events[0].ctx_customer, "Northwind")
        self.assertTrue(all(e.done_at and e.duration_ms >= 0 for e in events))
        self.assertTrue(all(e.latency_ms > 0 for e in events), "received -> done, on the database clock")
        log = self.env["ps.hub.audit.log"].search([("event_id", "in", events.ids), ("action", "=", "process")])
        self.assertEqual(len(log), 2)

    def test_no_handler_is_ignored_with_reason(self):
        events, _dup = self.enqueue(self.hubspot, [dict(hs_event(3), subscriptionType="contact.creation")])
        self.process()
        self.assertEqual(events.state, "ignored")
        self.assertIn("No handler for hubspot event contact.creation", events.ignore_reason)

    def test_ignore_event(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(4)])

        def handler(event):
            raise IgnoreEvent("not closed-won")
        with self.with_handler(handler):
            self.process()
        self.assertEqual((events.state, events.ignore_reason), ("ignored", "not closed-won"))

    def test_business_error_rolls_back_handler_work(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(5)])

        def handler(event):
            self.env["res.partner"].create({"name": "half-done partner"})
            event._hub_note_context(customer="Context survives")
            raise BusinessError("SKU X missing", reason="missing_product")
        with self.with_handler(handler):
            self.process()
        self.assertEqual((events.state, events.error_class, events.reason),
                         ("exception", "business", "missing_product"))
        self.assertEqual(events.ctx_customer, "Context survives")
        self.assertFalse(self.env["res.partner"].search([("name", "=", "half-done partner")]))

    def test_transient_backoff_then_dead(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(6)])
        calls = []

        def handler(event):
            calls.append(event.attempts)
            raise TransientError("HTTP 429", reason="rate_limited")
        with self.with_handler(handler):
            self.process()
            self.assertEqual(events.state, "retry")
            delay = (events.next_attempt_at - fields.Datetime.now()).total_seconds()
            self.assertGreaterEqual(delay, 4)  # base 10 s, jitter keeps at least half
            self.assertLessEqual(delay, 11)
            self.process()
            self.assertEqual(calls, [1], "not due yet: no second attempt")
            for _attempt in range(2):
                events.sudo().write({"next_attempt_at": fields.Datetime.now() - timedelta(seconds=1)})
                self.process()
        self.assertEqual(calls, [1, 2, 3])
        self.assertEqual((events.state, events.error_class), ("dead", "transient"))

    def test_unique_violation_is_retried(self):
        """Two workers creating the same new record: the loser retries in a new transaction."""
        events, _dup = self.enqueue(self.hubspot, [hs_event(20), hs_event(21, 2)])
        partner = self.env["res.partner"].create({"name": "bound elsewhere"})
        self.env["ps.hub.binding"]._hub_bind(self.hubspot, "company", "C1", partner)

        def handler(event):
            if event.external_id == "1":
                self.env["ps.hub.binding"].create({
                    "connector_id": self.hubspot.id, "external_model": "company", "external_id": "C1",
                    "res_model": "res.partner", "res_id": partner.id})
            return partner
        with self.with_handler(handler), mute_logger("odoo.sql_db"):
            self.process()
        self.assertEqual(events.mapped("state"), ["retry", "done"], "the other event of the batch is not hurt")
        self.assertEqual((events[0].error_class, events[0].reason), ("transient", "database_conflict"))

    def test_retry_after_is_honoured(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(7)])

        def handler(event):
            raise TransientError("HTTP 429", retry_after=600)
        with self.with_handler(handler):
            self.process()
        self.assertGreater((events.next_attempt_at - fields.Datetime.now()).total_seconds(), 590)

    def test_crash_lands_on_desk(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(8)])

        def handler(event):
            raise ZeroDivisionError("bug")
        with self.with_handler(handler), mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_event"):
            self.process()
        self.assertEqual((events.state, events.reason), ("exception", "handler_crash"))
        self.assertIn("ZeroDivisionError", events.last_error)

    def test_ordering_key_serialises_one_object(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(9, 77), hs_event(10, 77), hs_event(11, 78)])
        seen = []
        with self.with_handler(lambda event: seen.append(event.id)):
            claimed = self.env["ps.hub.event"]._hub_claim(10, "tok")
            self.assertEqual(claimed, [events[0].id, events[2].id], "the second event of object 77 waits")
            self.env["ps.hub.event"]._hub_process_claimed("tok")
            self.assertEqual(self.env["ps.hub.event"]._hub_claim(10, "tok2"), [events[1].id])
            self.env["ps.hub.event"]._hub_process_claimed("tok2")
        self.assertEqual(seen, [events[0].id, events[2].id, events[1].id])

    def test_duplicate_delivery_not_stored_twice(self):
        events, dup = self.enqueue(self.hubspot, [hs_event(12), hs_event(12)])
        self.assertEqual((len(events), dup), (1, 1))
        again, dup = self.enqueue(self.hubspot, [hs_event(12)])
        self.assertEqual((len(again), dup), (0, 1))
        # the same event id from another connector is another event
        other = self.hubspot.copy({"name": "HubSpot 2"})
        third, dup = self.enqueue(other, [hs_event(12)])
        self.assertEqual((len(third), dup), (1, 0))

    def test_malformed_is_stored_as_exception(self):
        events, _dup = self.enqueue(self.hubspot, b"[{not json")
        self.assertEqual((events.state, events.reason, events.event_type), ("exception", "malformed", "malformed"))
        self.assertEqual(events.payload_raw, "[{not json")
        self.assertIn("invalid JSON", events.last_error)

    def test_stale_processing_is_reclaimed(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(13)])
        Event = self.env["ps.hub.event"]
        self.assertEqual(Event._hub_claim(10, "dead-worker"), events.ids)
        self.assertEqual(Event._hub_reclaim_stale(), 0, "within its lease the claim stands")
        self.env.cr.execute("UPDATE ps_hub_event SET claimed_at = claimed_at - interval '1 hour' WHERE id = %s",
                            [events.id])
        with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_event"):
            self.assertEqual(Event._hub_reclaim_stale(), 1)
        self.assertEqual((events.state, events.reason), ("retry", "worker_lost"))
        log = self.env["ps.hub.audit.log"].search([("event_id", "=", events.id), ("action", "=", "reclaim")])
        self.assertEqual(log.after, {"state": "retry", "reason": "worker_lost"})
        self.assertEqual(Event._hub_claim(10, "next-worker"), events.ids)

    def test_enqueue_triggers_workers(self):
        cron = self.env.ref("ps_integration_hub.ir_cron_process_events_1")
        self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()
        before = 0
        self.enqueue(self.hubspot, [hs_event(14)])
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), before + 1)
        self.enqueue(self.hubspot, [hs_event(15)])
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), before + 1,
                         "a due trigger is already there: no second one")
        self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()  # the cron started
        self.enqueue(self.hubspot, [hs_event(16)])
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), 1)
        cron.active = False
        self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()
        self.enqueue(self.hubspot, [hs_event(17)])
        self.assertFalse(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]))
