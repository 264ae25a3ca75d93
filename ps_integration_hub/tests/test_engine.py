from datetime import timedelta

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.ps_hub_engine import HEAD_WEIGHT
from ..services import outcome as oc
from ..services.errors import BusinessError, TransientError
from .common import HubCase, patched_handler

KEY = ("hubspot", "company.propertyChange")


def company_change(event_id, object_id, value="x"):
    return {"eventId": event_id, "subscriptionType": "company.propertyChange", "objectId": object_id,
            "propertyName": "name", "propertyValue": value, "occurredAt": 1763632800000}


@tagged("post_install", "-at_install")
class TestEngine(HubCase):
    """Dispatch through event types, batches split down on failure, and busy objects."""

    def enqueue_changes(self, pairs):
        """Events for [(event id, object id)], one delivery of at most 100 events each."""
        events = self.env["ps.hub.event"]
        for start in range(0, len(pairs), 100):
            more, _dup = self.enqueue(self.hubspot, [company_change(e, o) for e, o in pairs[start:start + 100]])
            events |= more
        return events

    # ------------------------------------------------------------ dispatch

    def test_events_carry_their_declared_type(self):
        undeclared, _dup = self.enqueue(self.hubspot, [dict(company_change(1, 1), subscriptionType="x.unknown")])
        with patched_handler(self.env, lambda event: None, KEY) as event_type:
            declared = self.enqueue_changes([(2, 2)])
            self.assertEqual(declared.event_type_id, event_type)
            self.assertFalse(undeclared.event_type_id)
            self.process()
        self.assertEqual(declared.state, "done")
        self.assertEqual((undeclared.state, undeclared.reason), ("ignored", "no_handler"))

    def test_a_type_switched_off_for_a_connector_is_ignored_with_the_reason(self):
        with patched_handler(self.env, lambda event: None, KEY) as event_type:
            event_type._hub_switch(self.hubspot, enabled=False)
            events = self.enqueue_changes([(3, 3)])
            self.process()
        self.assertEqual((events.state, events.reason), ("ignored", "type_off"))
        self.assertIn(f"is off for connector {self.hubspot.name}", events.ignore_reason)

    def test_a_new_sandbox_connector_runs_only_the_types_safe_on_a_sandbox(self):
        with patched_handler(self.env, lambda event: None, KEY) as event_type:
            event_type.run_on_sandbox = False
            sandbox = self.hubspot.copy({"name": "HubSpot sandbox 2", "environment": "sandbox"})
            production = self.hubspot.copy({"name": "HubSpot production", "environment": "production"})
        runs = {a.connector_id: a.enabled for a in event_type.activation_ids}
        self.assertEqual((runs[sandbox], runs[production]), (False, True))

    def test_the_type_s_batch_size_bounds_each_call_of_its_handler(self):
        calls = []

        def batch(events):
            calls.append(len(events))
            return {event.id: None for event in events}
        events = self.enqueue_changes([(10 + i, 100 + i) for i in range(5)])
        with patched_handler(self.env, key=KEY, batch=batch) as event_type:
            event_type.batch_size = 2
            self.process()
        self.assertEqual(calls, [2, 2, 1])
        self.assertEqual(events.mapped("state"), ["done"] * 5)

    # ------------------------------------------------------------ failing batches

    def test_a_failing_batch_is_split_down_to_single_events(self):
        events = self.enqueue_changes([(20 + i, 200 + i) for i in range(6)])
        bad = events[3]
        calls = []

        def batch(evts):
            calls.append(evts.ids)
            for event in evts:
                self.env["res.partner"].create({"name": f"partner of {event.id}"})
            if bad in evts:
                raise ZeroDivisionError("a bug met on one event")
            return {event.id: oc.done(context={"customer": f"c{event.id}"}) for event in evts}
        with patched_handler(self.env, key=KEY, batch=batch), \
                mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_engine"):
            self.process()
        self.assertEqual(calls[0], events.ids)
        self.assertIn([bad.id], calls, "the bad event ends alone")
        self.assertEqual((bad.state, bad.reason), ("exception", "handler_crash"))
        self.assertIn("ZeroDivisionError: a bug met on one event", bad.last_error)
        good = events - bad
        self.assertEqual(good.mapped("state"), ["done"] * 5)
        self.assertEqual(good.mapped("ctx_customer"), [f"c{event.id}" for event in good])
        partners = self.env["res.partner"].search([("name", "like", "partner of %")])
        self.assertEqual(sorted(partners.mapped("name")), sorted(f"partner of {e.id}" for e in good),
                         "the failed tries left nothing behind")
        self.assertEqual(good.mapped("attempts"), [1] * 5, "a split batch is one attempt")

    def test_an_event_the_handler_forgot_lands_on_the_desk(self):
        events = self.enqueue_changes([(30, 300), (31, 301)])
        with patched_handler(self.env, key=KEY, batch=lambda evts: {evts[0].id: None}):
            self.process()
        self.assertEqual(events.mapped("state"), ["done", "exception"])
        self.assertEqual(events[1].reason, "no_outcome")

    # ------------------------------------------------------------ busy objects

    def test_a_busy_object_s_events_wait_out_of_the_claim_and_come_together(self):
        hot = self.enqueue_changes([(1000 + i, 7) for i in range(300)])
        others = self.enqueue_changes([(2000 + i, 70 + i) for i in range(5)])
        self.assertEqual(hot.mapped("held"), [False] + [True] * 299)
        self.assertFalse(any(others.mapped("held")))
        Engine = self.env["ps.hub.engine"]
        # a claim of 10 heads' room: the head, and 90 events behind it at a tenth of a head each
        first = Engine._hub_claim(10, "worker-a")
        self.assertEqual(HEAD_WEIGHT, 10)
        self.assertEqual(first, hot[:91].ids, "the head brings the next 90 events of its object")
        self.assertEqual(Engine._hub_claim(10, "worker-b"), others.ids,
                         "another worker takes the other objects, none of the busy one")
        seen = []

        def batch(events):
            seen.extend(events.ids)
            return {event.id: None for event in events}
        with patched_handler(self.env, key=KEY, batch=batch):
            Engine._hub_process_claimed("worker-a")
            self.assertEqual(seen, hot[:91].ids, "in their order")
            hot.invalidate_recordset()
            self.assertEqual(hot[91].held, False, "the next event of the object is its head now")
            self.assertEqual(Engine._hub_claim(20, "worker-a"), hot[91:282].ids)
            Engine._hub_process_claimed("worker-a")
            Engine._hub_process_claimed("worker-b")
            self.process()
        self.assertEqual(seen, hot[:282].ids + others.ids + hot[282:].ids)
        self.assertEqual(set(hot.mapped("state")), {"done"})

    def test_heads_of_other_objects_fill_the_room_a_busy_object_leaves(self):
        hot = self.enqueue_changes([(3000 + i, 8) for i in range(15)])
        others = self.enqueue_changes([(4000 + i, 80 + i) for i in range(5)])
        # room of 3 heads (30): the busy head (10) and its 14 events (14), then one more head (10)
        # would pass it: the claim stops at the first event that does not fit
        self.assertEqual(self.env["ps.hub.engine"]._hub_claim(3, "worker-a"), hot.ids)
        self.assertEqual(self.env["ps.hub.engine"]._hub_claim(3, "worker-b"), others[:3].ids)

    def test_a_transient_failure_gives_back_the_rest_of_its_object(self):
        events = self.enqueue_changes([(40 + i, 8) for i in range(10)]) | self.enqueue_changes([(60, 9)])
        failing, seen = {events[3].id}, []

        def handler(event):
            seen.append(event.id)
            if event.id in failing:
                raise TransientError("HTTP 503", reason="remote_unavailable")
        with patched_handler(self.env, handler, KEY):
            self.process()
            self.assertEqual(seen, events[:4].ids + events[10:].ids, "nothing after the failure runs")
            self.assertEqual(events.mapped("state"), ["done"] * 3 + ["retry"] + ["pending"] * 6 + ["done"])
            self.assertEqual(events[4:10].mapped("attempts"), [0] * 6, "given back uncharged")
            self.assertEqual(events[4:10].mapped("held"), [True] * 6)
            self.assertFalse(events[3].held)
            self.process()
            self.assertEqual(len(seen), 5, "the failed event is not due yet, and the rest wait behind it")
            failing.clear()
            events[3].sudo().write({"next_attempt_at": fields.Datetime.now() - timedelta(seconds=1)})
            self.process()
        self.assertEqual(seen[5:], events[3:10].ids)
        self.assertEqual(set(events.mapped("state")), {"done"})

    def test_a_batch_that_ran_past_an_event_left_queued_is_run_again_without_the_rest(self):
        events = self.enqueue_changes([(70, 11), (71, 11), (72, 11), (73, 12)])
        runs = []

        def careless(evts):
            # a batch handler that goes on with an object after one of its events failed
            runs.append(evts.ids)
            results = {}
            for event in evts:
                self.env["res.partner"].create({"name": f"careless {event.id}"})
                results[event.id] = TransientError("timeout") if event == events[1] else None
            return results
        with patched_handler(self.env, key=KEY, batch=careless):
            self.process()
        self.assertEqual(runs, [events.ids, [events[0].id, events[1].id, events[3].id]])
        self.assertEqual(events.mapped("state"), ["done", "retry", "pending", "done"])
        self.assertFalse(self.env["res.partner"].search([("name", "=", f"careless {events[2].id}")]),
                         "what it did for the later event is undone")
        self.assertEqual(events[2].attempts, 0)

    def test_desk_retry_of_an_earlier_event_holds_the_later_ones_again(self):
        events = self.enqueue_changes([(80, 13)])

        def handler(event):
            if event == events[0] and event.attempts == 1:
                raise BusinessError("fix me")
        with patched_handler(self.env, handler, KEY):
            self.process()
            self.assertEqual(events.state, "exception")
            later = self.enqueue_changes([(81, 13)])
            self.assertFalse(later.held, "an exception does not hold its object")
            events.with_user(self.user_finance).action_retry()
            self.assertEqual((events.held, later.held), (False, True))
            self.assertEqual(self.env["ps.hub.engine"]._hub_claim(10, "w"), (events | later).ids)

    def test_a_hold_nobody_releases_is_released_by_the_next_run(self):
        events = self.enqueue_changes([(90, 14)])
        # stored while the last event of its object was finishing in another transaction
        self.env.cr.execute("UPDATE ps_hub_event SET held = TRUE WHERE id = %s", [events.id])
        events.invalidate_recordset()
        Engine = self.env["ps.hub.engine"]
        self.assertEqual(Engine._hub_claim(10, "w"), [])
        self.assertEqual(Engine._hub_release_lost_holds(), 1)
        self.assertEqual(Engine._hub_claim(10, "w"), events.ids)

    def test_a_lost_batch_of_one_object_waits_behind_its_first_event(self):
        events = self.enqueue_changes([(95 + i, 15) for i in range(3)])
        Engine = self.env["ps.hub.engine"]
        self.assertEqual(Engine._hub_claim(10, "dead-worker"), events.ids)
        self.env.cr.execute("UPDATE ps_hub_event SET claimed_at = claimed_at - interval '1 hour', "
                            "next_attempt_at = next_attempt_at - interval '2 hours' WHERE id IN %s",
                            [tuple(events.ids)])
        with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_engine"):
            self.assertEqual(Engine._hub_reclaim_stale(), 3)
        events.invalidate_recordset()
        self.assertEqual(events.mapped("state"), ["retry"] * 3)
        self.assertEqual(events.mapped("held"), [False, True, True])
