import time
from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models import ps_hub_engine
from ..services import budget
from ..services import outcome as oc
from ..services.errors import BusinessError, HubError, IgnoreEvent, TransientError
from .common import HubCase, patched_handler


def hs_event(event_id, object_id=1, value="closedwon", prop="dealstage"):
    return {"eventId": event_id, "subscriptionType": "deal.propertyChange", "objectId": object_id,
            "propertyName": prop, "propertyValue": value, "occurredAt": 1763632800000}


def slow_vendor(clock, seconds):
    """A handler that takes ``seconds`` on the frozen ``clock``."""
    def handler(event):
        clock.tick(seconds)
    return handler


@tagged("post_install", "-at_install")
class TestWorker(HubCase):
    def with_handler(self, handler, key=("hubspot", "deal.propertyChange")):
        return patched_handler(self.env, handler, key)

    def test_done_with_result(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(1, 10), hs_event(2, 11)])

        def handler(event):
            partner = self.env["res.partner"].create({"name": f"from {event.external_id}"})
            return oc.done(partner, {"customer": "Northwind", "reference": "Deal", "amount": 5.0, "currency": "EUR"})
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
        self.assertEqual(events.reason, "no_handler")
        self.assertIn("No event type is declared for hubspot events contact.creation", events.ignore_reason)

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
            raise BusinessError("SKU X missing", reason="missing_product", context={"customer": "Context survives"})
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
        with self.with_handler(handler), mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_engine"):
            self.process()
        self.assertEqual((events.state, events.reason), ("exception", "handler_crash"))
        self.assertIn("ZeroDivisionError", events.last_error)

    def test_events_of_one_object_are_claimed_together_and_run_in_order(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(9, 77), hs_event(10, 77), hs_event(11, 78)])
        self.assertEqual(events.mapped("held"), [False, True, False], "the second event of object 77 waits")
        seen = []
        Engine = self.env["ps.hub.engine"]
        with self.with_handler(lambda event: seen.append(event.id)):
            self.assertEqual(Engine._hub_claim(10, "tok"), events.ids, "it comes with the first")
            Engine._hub_process_claimed("tok")
        self.assertEqual(seen, events.ids)
        self.assertEqual(events.mapped("state"), ["done"] * 3)

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
        Event = self.env["ps.hub.engine"]
        self.assertEqual(Event._hub_claim(10, "dead-worker"), events.ids)
        self.assertEqual(Event._hub_reclaim_stale(), 0, "within its lease the claim stands")
        self.env.cr.execute("UPDATE ps_hub_event SET claimed_at = claimed_at - interval '1 hour' WHERE id = %s",
                            [events.id])
        with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_engine"):
            self.assertEqual(Event._hub_reclaim_stale(), 1)
        self.assertEqual((events.state, events.reason), ("retry", "worker_lost"))
        log = self.env["ps.hub.audit.log"].search([("event_id", "=", events.id), ("action", "=", "reclaim")])
        self.assertEqual(log.after, {"state": "retry", "reason": "worker_lost"})
        self.env.cr.execute("SELECT EXTRACT(EPOCH FROM next_attempt_at - (now() AT TIME ZONE 'UTC')) "
                            "FROM ps_hub_event WHERE id = %s", [events.id])
        self.assertGreaterEqual(self.env.cr.fetchone()[0], 4, "a reclaimed event waits its backoff (base 10 s)")
        self.assertEqual(Event._hub_claim(10, "next-worker"), [])
        self.env.cr.execute("UPDATE ps_hub_event SET next_attempt_at = next_attempt_at - interval '1 hour' "
                            "WHERE id = %s", [events.id])
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

    # ------------------------------------------------------------ a unique violation met twice

    def test_unique_violation_met_again_is_a_permanent_exception(self):
        """A stale binding: the handler creates one that exists. Retried once (it could have been
        another worker's concurrent create), then on the desk: never a dead letter."""
        events, _dup = self.enqueue(self.hubspot, [hs_event(22, 3)])
        partner = self.env["res.partner"].create({"name": "bound long ago"})
        self.env["ps.hub.binding"]._hub_bind(self.hubspot, "company", "C9", partner)

        def handler(event):
            return self.env["ps.hub.binding"].create({
                "connector_id": self.hubspot.id, "external_model": "company", "external_id": "C9",
                "res_model": "res.partner", "res_id": partner.id})
        with self.with_handler(handler), mute_logger("odoo.sql_db"):
            self.process()
            self.assertEqual((events.state, events.error_class, events.reason),
                             ("retry", "transient", "database_conflict"))
            events.sudo().write({"next_attempt_at": fields.Datetime.now() - timedelta(seconds=1)})
            self.process()
        self.assertEqual((events.state, events.error_class, events.reason),
                         ("exception", "permanent", "unique_violation"))
        self.assertIn("ps_hub_binding_external_unique", events.last_error)
        self.assertEqual(events.attempts, 2)

    # ------------------------------------------------------------ ordering behind retry / exception

    def test_later_event_of_an_object_waits_while_an_earlier_one_waits_to_retry(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(40, 88), hs_event(41, 88), hs_event(42, 89)])
        seen, failing = [], {events[0].id}

        def handler(event):
            seen.append(event.id)
            if event.id in failing:
                raise TransientError("HTTP 503", reason="remote_unavailable")
        with self.with_handler(handler):
            self.process()
            self.assertEqual(events.mapped("state"), ["retry", "pending", "done"])
            self.assertEqual(events[1].attempts, 0, "never claimed")
            self.process()
            self.assertEqual(seen, [events[0].id, events[2].id], "not due yet, and the later event still waits")
            failing.clear()
            events[0].sudo().write({"next_attempt_at": fields.Datetime.now() - timedelta(seconds=1)})
            self.process()
        self.assertEqual(events.mapped("state"), ["done"] * 3)
        self.assertEqual(seen, [events[0].id, events[2].id, events[0].id, events[1].id])

    def test_later_event_of_an_object_goes_on_while_an_earlier_one_is_on_the_desk(self):
        """Decided: an exception (or dead letter) does not hold its object's later events. A person
        works it in their own time, and handlers decide from the vendor's current state."""
        events, _dup = self.enqueue(self.hubspot, [hs_event(43, 90), hs_event(44, 90)])
        seen, failing = [], {events[0].id}

        def handler(event):
            seen.append(event.id)
            if event.id in failing:
                raise BusinessError("SKU X missing", reason="missing_product")
        with self.with_handler(handler):
            self.process()
            self.assertEqual(events.mapped("state"), ["exception", "done"])
            failing.clear()
            events[0].with_user(self.user_finance).action_retry()
            self.process()
        self.assertEqual(events.mapped("state"), ["done", "done"])
        self.assertEqual(seen, [events[0].id, events[1].id, events[0].id])

    # ------------------------------------------------------------ time budget of a run

    def test_run_gives_back_the_events_it_has_no_time_to_start(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(30, 301), hs_event(31, 302), hs_event(32, 303),
                                                   hs_event(33, 304)])
        events[3].sudo().write({"state": "retry", "error_class": "transient", "reason": "network", "attempts": 2})
        Event = self.env["ps.hub.engine"]
        with freeze_time(fields.Datetime.now()) as clock, self.with_handler(slow_vendor(clock, 20)):
            self.assertEqual(Event._hub_claim(10, "slow-vendor"), events.ids)
            ran = Event.with_context(ps_hub_start_until=time.monotonic() + 30)._hub_process_claimed("slow-vendor")
        self.assertEqual(ran, events[:2], "started at 0 s and 20 s; at 40 s the run may start nothing more")
        events.invalidate_recordset()
        self.assertEqual(events.mapped("state"), ["done", "done", "pending", "retry"])
        self.assertEqual(events.mapped("attempts"), [1, 1, 0, 2], "what was not started is not charged")
        self.assertFalse(any(events[2:].mapped("claim_token")))
        self.assertFalse(self.env["ps.hub.audit.log"].search([("event_id", "in", events[2:].ids)]))
        self.assertEqual(Event._hub_claim(10, "next-worker"), events[2:].ids, "any worker takes them at once")

    def test_vendor_call_at_the_end_of_the_run_gives_the_event_back(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(34, 305), hs_event(35, 306)])
        Event = self.env["ps.hub.engine"]

        def read_deals(evts):
            results = {}
            for event in evts:
                try:
                    event.connector_id._hub_request("GET", f"/crm/v3/objects/deals/{event.external_id}")
                except HubError as exc:
                    results[event.id] = exc
            return results
        with patched_handler(self.env, batch=read_deals), \
                patch("requests.request", side_effect=AssertionError("no call may start")):
            Event._hub_claim(10, "late")
            ran = Event.with_context(ps_hub_call_until=time.monotonic() - 1)._hub_process_claimed("late")
        self.assertFalse(ran)
        events.invalidate_recordset()
        self.assertEqual(events.mapped("state"), ["pending", "pending"])
        self.assertEqual(events.mapped("attempts"), [0, 0])

    def test_cron_run_stops_claiming_and_sizes_its_claims_to_its_time(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(50 + i, 500 + i) for i in range(5)])
        Event = self.env["ps.hub.engine"]
        Model, Cron = type(Event), type(self.env["ir.cron"])
        claim, limits, progress = Model._hub_claim, [], []

        def recording_claim(model, limit, token):
            limits.append(limit)
            return claim(model, limit, token)

        def no_commit(cron, processed=0, *, remaining=None, deactivate=False):
            progress.append((processed, remaining))
            return float("inf")
        with freeze_time(fields.Datetime.now()) as clock, self.with_handler(slow_vendor(clock, 12)), \
                patch.object(Model, "_hub_claim", recording_claim), patch.object(Cron, "_commit_progress", no_commit), \
                patch.object(Model, "_hub_run_budget", lambda model: budget.RunBudget(time.monotonic(), 50)), \
                patch.dict(ps_hub_engine._SECONDS_PER_EVENT, clear=True), \
                patch.object(ps_hub_engine, "note_more_work") as more:
            # usable 50 s: claims until 20 s, events start until 30 s
            Event._cron_process_events()
            events.invalidate_recordset()
            self.assertEqual(events.mapped("state"), ["done"] * 3 + ["pending"] * 2)
            self.assertEqual(limits, [budget.PROBE_BATCH], "at 36 s the run claims nothing more")
            self.assertEqual(progress[-1], (0, 1), "it tells Odoo work remains")
            self.assertEqual(more.call_count, 1, "and the runners are woken for the next run")
            Event._cron_process_events()  # a new run: 12 s an event, 30 s to start them
        self.assertEqual(limits, [budget.PROBE_BATCH, 3])
        events.invalidate_recordset()
        self.assertEqual(events.mapped("state"), ["done"] * 5)
        self.assertEqual(events.mapped("attempts"), [1] * 5)

    def test_cron_run_after_the_time_of_its_pass_is_spent_claims_nothing(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(60, 600)])
        Model, Cron = type(self.env["ps.hub.engine"]), type(self.env["ir.cron"])
        spent = budget.RunBudget(time.monotonic() - 40, 50)  # an earlier job of the pass took 40 s
        with patch.object(Model, "_hub_run_budget", lambda model: spent), \
                patch.object(Cron, "_commit_progress", lambda *args, **kwargs: float("inf")) as _commit, \
                patch.object(ps_hub_engine, "note_more_work") as more:
            self.env["ps.hub.engine"]._cron_process_events()
        self.assertEqual(events.state, "pending")
        self.assertEqual(more.call_count, 1)
