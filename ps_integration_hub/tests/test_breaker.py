import time
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import requests

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from ps_hub_fakes import FakeHubSpot

from ..services.errors import ConnectorPaused, PermanentError, RateLimited, TransientError
from .common import HubCaseMixin, patched_handler

KEY = ("hubspot", "company.propertyChange")
COMPANY = "/crm/v3/objects/companies/5500071"
DEAL = "/crm/v3/objects/deals/19077001"
PAST = "2000-01-01 00:00:00"


def company_change(event_id, object_id):
    return {"eventId": event_id, "subscriptionType": "company.propertyChange", "objectId": object_id,
            "propertyName": "name", "propertyValue": "x", "occurredAt": 1763632800000}


@tagged("post_install", "-at_install")
class TestRateLimitsAndBreaker(HubCaseMixin, TransactionCase):
    """Rate limits retried without burning a batch, and the circuit breaker, against fake vendors
    that fail and then recover. The events' handler reads a HubSpot company per event."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.start_fake_vendors()
        cls.Connector = cls.env["ps.hub.connector"]

    def setUp(self):
        super().setUp()
        self.fake_hubspot.reset()
        self.fake_hubspot.rate_limit = None
        self.fake_salesforce.reset()
        self.startPatcher(patch.dict("odoo.addons.ps_integration_hub.models.ps_hub_connector._TOKENS", clear=True))
        self.next_event = 1000

    # ------------------------------------------------------------ helpers

    def enqueue_events(self, n):
        pairs = [(self.next_event + i, self.next_event + i) for i in range(n)]
        self.next_event += n
        events, _dup = self.enqueue(self.hubspot, [company_change(e, o) for e, o in pairs])
        return events.sorted("id")

    def run_events(self, before_call=None):
        """Process what is due; each event's handler reads a company from HubSpot."""
        def handler(event):
            if before_call:
                before_call(event)
            event.connector_id._hub_request("GET", COMPANY)
        with patched_handler(self.env, handler, KEY):
            return self.process()

    def calls(self):
        return len(self.fake_hubspot.calls("GET", COMPANY))

    def failure(self, connector, path=COMPANY, expected=Exception):
        """What ``connector._hub_request("GET", path)`` raised, checked to be an ``expected``.

        Not assertRaises, which rolls back to a savepoint what the block wrote: the connector
        writes what it learned of its vendor in a transaction of its own, which stays."""
        try:
            connector._hub_request("GET", path)
        except expected as exc:
            return exc
        self.fail(f"GET {path} raised no {expected.__name__}")

    def seconds_until(self, when):
        return (when - fields.Datetime.now()).total_seconds()

    def open_breaker(self, n_events=8):
        self.fake_hubspot.fail_next(50, status=503)
        events = self.enqueue_events(n_events)
        with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_connector"):
            self.run_events()
        self.hubspot.invalidate_recordset()
        self.assertEqual(self.hubspot.breaker_state, "open")
        return events

    def make_due(self, events):
        events.sudo().next_attempt_at = PAST
        events.flush_recordset()

    def activities(self):
        return self.hubspot.activity_ids.filtered(
            lambda a: a.activity_type_id == self.env.ref("ps_integration_hub.mail_activity_type_breaker_open"))

    def audit(self, action):
        return self.env["ps.hub.audit.log"].search([("connector_id", "=", self.hubspot.id), ("action", "=", action)])

    # ------------------------------------------------------------ the breaker

    def test_repeated_5xx_open_the_breaker_and_its_events_wait_uncharged(self):
        events = self.open_breaker(8)
        self.assertEqual(self.calls(), 5, "no call once the fifth consecutive failure tripped the breaker")
        failed, waiting = events[:5], events[5:]
        self.assertEqual(failed.mapped("state"), ["retry"] * 5)
        self.assertEqual(failed.mapped("reason"), ["remote_unavailable"] * 5)
        self.assertEqual(failed.mapped("attempts"), [1] * 5)
        self.assertEqual(waiting.mapped("state"), ["pending"] * 3, "given back unstarted, not failed")
        self.assertEqual(waiting.mapped("attempts"), [0] * 3)
        self.assertFalse(any(waiting.mapped("last_error")))
        for event in waiting:
            self.assertGreater(self.seconds_until(event.next_attempt_at), 50, "due again at the probe")
        hub = self.hubspot
        self.assertEqual((hub.breaker_failures, hub.breaker_cooldown), (5, 60))
        self.assertAlmostEqual(self.seconds_until(hub.breaker_probe_at), 60, delta=5)
        self.assertIn("HTTP 503", hub.breaker_last_error)
        activities = self.activities()
        self.assertIn(self.user_manager, activities.user_id, "the integration managers are told")
        self.assertEqual(len(activities), len(activities.user_id), "one activity per manager")
        self.assertNotIn(self.user_hub, activities.user_id)
        self.assertEqual(len(self.audit("breaker_open")), 1)

        # while it is open the connector's events are not claimed, even when due: no attempt used
        self.make_due(events)
        self.assertIn(hub.id, self.Connector._hub_blocked_ids())
        self.assertFalse(self.run_events())
        events.invalidate_recordset()
        self.assertEqual(events.mapped("attempts"), [1] * 5 + [0] * 3)
        self.assertEqual(self.calls(), 5)
        self.failure(hub, expected=ConnectorPaused)
        self.assertEqual(self.calls(), 5, "nor any other call")
        # more failures counted while it is open (a batch begun before it opened) add no activity
        for _i in range(5):
            hub._hub_note_failure(TransientError("HTTP 503", reason="remote_unavailable"))
        self.Connector._hub_flush_health()
        self.assertEqual((hub.breaker_state, hub.breaker_failures), ("open", 10))
        self.assertEqual(self.activities(), activities)
        self.assertEqual(len(self.audit("breaker_open")), 1)

    def test_the_probe_reopens_the_breaker_for_longer_then_closes_it_when_the_vendor_recovers(self):
        events = self.open_breaker(6)
        activities = self.activities()
        self.assertEqual(self.Connector._hub_probe_due(), 0, "no probe before the cooldown is over")

        self.hubspot.sudo().breaker_probe_at = PAST
        with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_connector"):
            self.assertEqual(self.Connector._hub_probe_due(), 1)
        hub = self.hubspot
        self.assertEqual(len(self.fake_hubspot.calls("GET", "/account-info/v3/details")), 1, "one cheap probe call")
        self.assertEqual((hub.breaker_state, hub.breaker_cooldown), ("open", 120), "the cooldown doubles")
        self.assertAlmostEqual(self.seconds_until(hub.breaker_probe_at), 120, delta=5)
        self.assertEqual(self.activities(), activities, "no second activity while it stays open")

        self.fake_hubspot.reset()  # the vendor is back
        hub.sudo().breaker_probe_at = PAST
        self.assertEqual(self.Connector._hub_probe_due(), 1)
        self.assertEqual((hub.breaker_state, hub.breaker_failures, hub.breaker_probe_at), ("closed", 0, False))
        self.assertFalse(self.activities(), "the managers' activities are done")
        self.assertIn("probe call went through", hub.message_ids[0].body)
        self.assertEqual(len(self.audit("breaker_close")), 1)
        self.assertNotIn(hub.id, self.Connector._hub_blocked_ids())

        self.make_due(events)
        self.run_events()
        self.assertEqual(events.mapped("state"), ["done"] * 6)
        self.assertEqual(events.mapped("attempts"), [2] * 5 + [1], "the events given back were charged once")

    def test_managers_probe_or_close_by_hand(self):
        events = self.open_breaker(6)
        waiting = events[5]
        self.assertGreater(self.seconds_until(waiting.next_attempt_at), 50)
        with self.assertRaises(AccessError):
            self.hubspot.with_user(self.user_hub).action_breaker_close()
        with mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_connector"):
            self.hubspot.with_user(self.user_manager).action_breaker_probe()
        self.assertEqual(self.hubspot.breaker_state, "open", "the vendor still fails")
        self.hubspot.with_user(self.user_manager).action_breaker_close()
        self.assertEqual((self.hubspot.breaker_state, self.hubspot.breaker_failures), ("closed", 0))
        self.assertFalse(self.activities())
        self.assertIn(self.user_manager.name, self.hubspot.message_ids[0].body)
        self.assertLess(self.seconds_until(waiting.next_attempt_at), 1, "what waited for the probe runs now")
        self.fake_hubspot.reset()
        self.assertEqual(self.run_events(), waiting, "the others wait their backoff")

    def test_timeouts_count_toward_the_breaker(self):
        self.hubspot.breaker_threshold = 2
        # (the harness raises timeouts under 10 s to 10 s: the vendor's slowness is the mock's)
        with patch("requests.request", side_effect=requests.ReadTimeout("read timed out")) as call, \
                mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_connector"):
            for _i in range(2):
                self.assertEqual(self.failure(self.hubspot, expected=TransientError).reason, "network")
            paused = self.failure(self.hubspot, expected=ConnectorPaused)
        self.assertEqual((paused.reason, call.call_count), ("breaker_open", 2))
        self.hubspot.invalidate_recordset()
        self.assertEqual(self.hubspot.breaker_state, "open", "outside a batch the opening is written at once")

    def test_a_success_ends_the_consecutive_failures(self):
        self.fake_hubspot.fail_next(3, status=503)
        events = self.enqueue_events(3)
        self.run_events()
        self.assertEqual((self.hubspot.breaker_state, self.hubspot.breaker_failures), ("closed", 3))
        self.make_due(events)
        self.run_events()
        self.assertEqual(events.mapped("state"), ["done"] * 3)
        self.assertEqual((self.hubspot.breaker_state, self.hubspot.breaker_failures), ("closed", 0))

    def test_refusals_and_rate_limits_do_not_open_the_breaker(self):
        self.hubspot.breaker_threshold = 1
        self.fake_hubspot.fail_next(1, status=404)
        self.failure(self.hubspot, expected=PermanentError)  # the request's fault, not the vendor's
        self.fake_hubspot.rate_limit_next(1)
        self.failure(self.hubspot, expected=RateLimited)
        self.Connector._hub_flush_health()
        self.assertEqual((self.hubspot.breaker_state, self.hubspot.breaker_failures), ("closed", 0))

    # ------------------------------------------------------------ rate limits

    def test_a_429_mid_batch_retries_its_event_at_the_window_and_gives_the_rest_back(self):
        self.hubspot.retry_backoff_base = 1  # only HubSpot's window can explain a 10-second wait
        events = self.enqueue_events(6)

        def before_call(event):
            if event == events[2]:
                self.fake_hubspot.rate_limit_next(1)  # TEN_SECONDLY_ROLLING: Remaining 0 of the 10 s window
        self.run_events(before_call)
        done, limited, rest = events[:2], events[2], events[3:]
        self.assertEqual(self.calls(), 3, "nothing sent after the 429")
        self.assertEqual(done.mapped("state"), ["done"] * 2)
        self.assertEqual((limited.state, limited.error_class, limited.reason), ("retry", "transient", "rate_limited"))
        self.assertEqual(limited.attempts, 0, "a rate limit is not the event's fault: no attempt used")
        self.assertIn("TEN_SECONDLY_ROLLING", limited.last_error)
        self.assertAlmostEqual(self.seconds_until(limited.next_attempt_at), 10, delta=2)
        self.assertEqual(rest.mapped("state"), ["pending"] * 3)
        self.assertEqual(rest.mapped("attempts"), [0] * 3)
        for event in rest:
            self.assertAlmostEqual(self.seconds_until(event.next_attempt_at), 10, delta=2)
        self.assertAlmostEqual(self.seconds_until(self.hubspot.paused_until), 10, delta=2)
        self.assertEqual(self.hubspot.pause_reason, "rate_limited")
        self.assertIn(self.hubspot.id, self.Connector._hub_blocked_ids(), "no worker calls before the window ends")

        # rate limited again and again, never dead-lettered (this connector allows 3 attempts)
        for _i in range(4):
            self.end_vendor_pause(self.hubspot)
            self.make_due(limited)
            self.fake_hubspot.rate_limit_next(1)
            self.run_events()
        self.assertEqual((limited.state, limited.attempts), ("retry", 0))
        self.end_vendor_pause(self.hubspot)
        self.make_due(events)
        self.run_events()
        self.assertEqual(events.mapped("state"), ["done"] * 6)
        self.assertEqual(events.mapped("attempts"), [1] * 6)

    def test_a_batch_call_refused_for_the_rate_limit_is_not_split(self):
        """A handler that reads its whole batch in one call (HubSpot's batch read) and raises:
        the batch waits the window as it is, uncharged, instead of being split into calls that
        would each meet the limit."""
        calls = []

        def batch(events):
            calls.append(len(events))
            events[:1].connector_id._hub_request(
                "POST", "/crm/v3/objects/companies/batch/read", json={"inputs": [{"id": "5500071"}]})
            return {event.id: None for event in events}
        events = self.enqueue_events(4)
        self.fake_hubspot.rate_limit_next(1)
        with patched_handler(self.env, key=KEY, batch=batch):
            self.process()
        self.assertEqual(calls, [4], "run once, not split down")
        self.assertEqual(len(self.fake_hubspot.calls("POST")), 1)
        self.assertEqual(events.mapped("state"), ["pending"] * 4)
        self.assertEqual(events.mapped("attempts"), [0] * 4)
        for event in events:
            self.assertAlmostEqual(self.seconds_until(event.next_attempt_at), 10, delta=2)

    def test_retry_after_in_seconds_or_as_an_http_date_schedules_the_retry(self):
        first = self.enqueue_events(1)
        self.fake_hubspot.fail_next(1, status=429, retry_after=90)
        self.run_events()
        self.assertEqual((first.state, first.attempts), ("retry", 0))
        self.assertAlmostEqual(self.seconds_until(first.next_attempt_at), 90, delta=3)
        self.end_vendor_pause(self.hubspot)
        second = self.enqueue_events(1)
        self.fake_hubspot.fail_next(1, status=429, retry_after=datetime.now(UTC) + timedelta(seconds=300))
        self.run_events()
        self.assertEqual((second.state, second.attempts), ("retry", 0))
        self.assertAlmostEqual(self.seconds_until(second.next_attempt_at), 300, delta=3)
        self.assertAlmostEqual(self.seconds_until(self.hubspot.paused_until), 300, delta=3)

    def test_a_spent_window_pauses_the_connector_before_any_429(self):
        self.fake_hubspot.rate_limit = (3, 10.0)  # HubSpot's rolling window, 3 requests per 10 s
        events = self.enqueue_events(5)
        self.run_events()
        self.assertEqual(self.calls(), 3, "the call that spent the window was the last one")
        self.assertEqual(events.mapped("state"), ["done"] * 3 + ["pending"] * 2)
        self.assertEqual(events.mapped("attempts"), [1] * 3 + [0] * 2)
        self.assertAlmostEqual(self.seconds_until(events[3].next_attempt_at), 10, delta=2)
        hub = self.hubspot
        self.assertEqual((hub.quota_remaining, hub.quota_limit, hub.quota_window_seconds), (0, 3, 10.0))
        self.assertEqual((hub.quota_daily_remaining, hub.quota_daily_limit), (1_000_000 - 3, 1_000_000))
        self.assertEqual(hub.pause_reason, "quota_spent")

    # ------------------------------------------------------------ HubSpot's rolling window
    # paced by the connector for every caller of _hub_request: pushes (PATCH), reads (GET)

    def pause(self):
        """Seconds this process's connector makes no call for, as _hub_wait says (not the stored
        pause, which has whole seconds), and why."""
        wait = self.hubspot._hub_wait()
        self.assertTrue(wait, "the connector is paused")
        return wait[0], wait[1]

    def spend_window_in_two_calls(self, method, path, **kwargs):
        """A rolling window of 2 calls per 4 s, spent by two calls of this process 1.5 s apart:
        the first turns 4 s old 2.5 s after the second."""
        self.fake_hubspot.limit_rate(2, 4000)
        self.hubspot._hub_request(method, path, **kwargs)
        time.sleep(1.5)
        self.hubspot._hub_request(method, path, **kwargs)  # X-HubSpot-RateLimit-Remaining: 0

    def test_a_spent_window_pauses_until_the_oldest_call_of_this_process_ages_out(self):
        self.spend_window_in_two_calls("PATCH", DEAL, json={"properties": {"invoice_status": "posted"}})
        seconds, why = self.pause()
        self.assertEqual(why, "rate_limited")
        self.assertLessEqual(seconds, 2.5, "not the whole interval (4 s): the first call ages out before")
        self.assertGreater(seconds, 1.5)
        self.assertEqual(self.hubspot.pause_reason, "quota_spent")
        stored = self.hubspot.paused_until - datetime.now(UTC).replace(tzinfo=None)
        self.assertLessEqual(stored.total_seconds(), 2.5, "the precise pause is stored")
        paused = self.failure(self.hubspot, DEAL, ConnectorPaused)
        self.assertLessEqual(paused.retry_after, seconds)
        self.assertEqual(len(self.fake_hubspot.requests), 2, "nothing sent while paused")
        # once the pause is over, the window takes the call: the wait was not too short
        time.sleep(seconds + 0.05)
        self.assertIsNone(self.hubspot._hub_wait())
        self.hubspot._hub_request("PATCH", DEAL, json={"properties": {"invoice_status": "paid"}})
        self.assertEqual(self.fake_hubspot.refused, 0)

    def test_a_window_others_spent_in_part_pauses_its_whole_interval(self):
        self.fake_hubspot.limit_rate(2, 4000)
        # another client of the account (another process, another app) spends one call
        other = requests.get(self.fake_hubspot.base_url + COMPANY, timeout=5,
                             headers={"Authorization": "Bearer pat-test-token"})
        self.assertEqual(other.headers["X-HubSpot-RateLimit-Remaining"], "1")
        time.sleep(0.5)
        self.hubspot._hub_request("GET", COMPANY)  # Remaining: 0, with one call of this process
        seconds, why = self.pause()
        self.assertEqual(why, "rate_limited")
        self.assertAlmostEqual(seconds, 4.0, delta=0.3, msg="when the other's call ages out, it cannot know")

    def test_a_quote_to_cash_read_is_paced_as_a_push(self):
        """A plain GET, as the quote-to-cash handlers read deals and companies: no push handler."""
        self.spend_window_in_two_calls("GET", COMPANY)
        seconds, _why = self.pause()
        self.assertLessEqual(seconds, 2.5)
        self.assertGreater(seconds, 1.5)
        paused = self.failure(self.hubspot, COMPANY, ConnectorPaused)
        self.assertLessEqual(paused.retry_after, 2.5)
        self.assertEqual(self.calls(), 2)
        time.sleep(seconds + 0.05)
        self.hubspot._hub_request("GET", COMPANY)
        self.assertEqual((self.calls(), self.fake_hubspot.refused), (3, 0))

    def test_a_refusal_by_the_window_waits_for_its_oldest_call_with_the_window_last_reported(self):
        self.hubspot.retry_backoff_base = 30  # what a refusal with no window known waits
        self.fake_hubspot.limit_rate(3, 4000)
        self.hubspot._hub_request("GET", COMPANY)
        time.sleep(1.5)
        self.hubspot._hub_request("GET", COMPANY)  # Remaining: 1
        # HubSpot refuses all the same, its window holding 2 calls (a limit lowered meanwhile):
        # both of this process, the first ages out in 2.5 s
        body = type(self.fake_hubspot)._rate_limited_body("TEN_SECONDLY_ROLLING")
        self.fake_hubspot.fail_next(1, status=429, body=body, headers={"X-HubSpot-RateLimit-Max": "2"})
        limited = self.failure(self.hubspot, COMPANY, RateLimited)
        self.assertLessEqual(limited.retry_after, 2.5)
        self.assertGreater(limited.retry_after, 1.0)
        self.assertAlmostEqual(self.pause()[0], limited.retry_after, delta=0.1)
        self.assertEqual(self.hubspot.pause_reason, "rate_limited")
        # a 429 without the window's headers (a gateway's): the window the last answer reported
        self.end_vendor_pause(self.hubspot)
        self.fake_hubspot.fail_next(1, status=429, body=body)
        with patch.object(type(self.fake_hubspot), "_decorate", lambda fake, answer, req: None):
            bare = self.failure(self.hubspot, COMPANY, RateLimited)
        self.assertLessEqual(bare.retry_after, limited.retry_after, "not the backoff (30 s), not the interval")

    def test_a_429_with_retry_after_keeps_the_vendors_wait(self):
        self.fake_hubspot.limit_rate(2, 4000)
        self.hubspot._hub_request("GET", COMPANY)
        time.sleep(0.5)
        # a gateway's Retry-After on HubSpot's refusal: what the vendor asks is waited, as it is
        self.fake_hubspot.rate_limit_next(1, retry_after=3)
        limited = self.failure(self.hubspot, COMPANY, RateLimited)
        self.assertEqual(limited.retry_after, 3.0)
        self.assertAlmostEqual(self.pause()[0], 3.0, delta=0.2)

    def test_salesforce_request_limit_exceeded(self):
        account = "/services/data/v62.0/sobjects/Account/0015e00000QrStUAAV"
        self.salesforce._hub_request("GET", account)
        self.fake_salesforce.fail_next(1)  # 403 REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.
        limited = self.failure(self.salesforce, account, RateLimited)
        self.assertEqual(limited.policy, "TotalRequests Limit exceeded.")
        # the organization's 24 hours are spent and Salesforce gives no hint: the backoff cap
        self.assertEqual(limited.retry_after, self.salesforce.retry_backoff_cap)
        self.assertAlmostEqual(self.seconds_until(self.salesforce.paused_until), 3600, delta=5)
        self.assertEqual(self.salesforce.pause_reason, "rate_limited")
        before = len(self.fake_salesforce.requests)
        self.failure(self.salesforce, account, ConnectorPaused)
        self.assertEqual(len(self.fake_salesforce.requests), before, "nothing sent while paused")

    def test_the_salesforce_fake_enforces_its_allowance(self):
        token = self.fake_salesforce.issue_token()
        self.fake_salesforce.api_limit = 1
        url = f"{self.fake_salesforce.base_url}/services/data/v62.0/limits"
        first, second = (requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5) for _i in range(2))
        self.assertEqual(first.json()["DailyApiRequests"], {"Max": 1, "Remaining": 0})
        self.assertEqual(second.status_code, 403)
        self.assertEqual(second.json()[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED")
        self.assertEqual(second.headers["Sforce-Limit-Info"], "api-usage=1/1")

    # ------------------------------------------------------------ quota on the connector

    def test_the_quota_reported_is_shown_on_the_connector_and_written_sparingly(self):
        events = self.enqueue_events(1)
        self.run_events()
        hub = self.hubspot
        self.assertEqual(events.state, "done")
        unlimited = FakeHubSpot.UNLIMITED  # the fake's default window, never spent
        self.assertEqual((hub.quota_remaining, hub.quota_limit, hub.quota_window_seconds),
                         (unlimited - 1, unlimited, 10.0))
        self.assertEqual((hub.quota_daily_remaining, hub.quota_daily_limit), (999_999, 1_000_000))
        read_at = hub.quota_read_at
        self.assertTrue(read_at)
        self.enqueue_events(2)
        self.run_events()
        self.assertEqual((hub.quota_remaining, hub.quota_read_at), (unlimited - 1, read_at),
                         "not written again within a few seconds while nothing is spent")

        self.salesforce._hub_request("GET", "/services/data/v62.0/sobjects/Account/0015e00000QrStUAAV")
        self.Connector._hub_flush_health()
        used = self.fake_salesforce.api_usage
        self.assertEqual((self.salesforce.quota_daily_remaining, self.salesforce.quota_daily_limit),
                         (15000 - used, 15000))
        self.assertFalse(self.salesforce.quota_limit, "Salesforce reports no short window")
