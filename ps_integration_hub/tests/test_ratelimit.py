from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.tests import BaseCase, tagged

from ..services import breaker, ratelimit
from ..services import outcome as oc
from ..services.errors import ConnectorPaused, RateLimited, TransientError

H = "X-HubSpot-RateLimit-"
WINDOW = {H + "Max": "100", H + "Remaining": "0", H + "Interval-Milliseconds": "10000",
          H + "Daily": "500000", H + "Daily-Remaining": "499000"}
SF_LIMIT = '[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]'
SF_CONCURRENT = '[{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]'


@tagged("post_install", "-at_install")
class TestRateLimitServices(BaseCase):
    """The plain-Python reading of vendors' limits, the breaker's arithmetic, the outcomes."""

    # ------------------------------------------------------------ answers

    def test_hubspot_429_waits_its_window(self):
        verdict = ratelimit.classify(429, WINDOW, '{"policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"}')
        self.assertEqual(verdict, ratelimit.Verdict("rate_limited", wait=10.0, policy="TEN_SECONDLY_ROLLING",
                                                    window=True))
        # the rolling window's refusal, whatever its Remaining shows; without its interval the
        # caller knows it from earlier answers
        other = dict(WINDOW, **{H + "Remaining": "12"})
        self.assertEqual(ratelimit.classify(429, other, '{"policyName": "TEN_SECONDLY_ROLLING"}').wait, 10.0)
        bare = ratelimit.classify(429, {}, '{"policyName": "TEN_SECONDLY_ROLLING"}')
        self.assertEqual((bare.wait, bare.window), (None, True))
        self.assertTrue(ratelimit.classify(429, WINDOW, "").window, "no body: the headers show the window spent")

    def test_only_the_rolling_windows_whole_interval_may_be_shortened(self):
        self.assertTrue(ratelimit.classify(200, WINDOW).window)
        self.assertFalse(ratelimit.classify(200, dict(WINDOW, **{H + "Remaining": "3"})).window)
        self.assertFalse(ratelimit.classify(200, {}).window)
        # a wait the vendor gave, the per-second limit's second, the day's: kept as they are
        self.assertFalse(ratelimit.classify(429, dict(WINDOW, **{"Retry-After": "3"}),
                                            '{"policyName": "TEN_SECONDLY_ROLLING"}').window)
        self.assertFalse(ratelimit.classify(429, {H + "Secondly-Remaining": "0"}, '{"policyName": "SECONDLY"}').window)
        self.assertFalse(ratelimit.classify(429, dict(WINDOW, **{H + "Daily-Remaining": "0"}),
                                            '{"policyName": "DAILY"}').window)
        self.assertFalse(ratelimit.classify(200, dict(WINDOW, **{H + "Daily-Remaining": "0"})).window)
        both = ratelimit.classify(200, dict(WINDOW, **{H + "Secondly-Remaining": "0"}))
        self.assertEqual((both.wait, both.window), (10.0, False), "a shorter wait could miss the second's limit")

    def test_rolling_window_wait(self):
        calls = [float(i) / 10 for i in range(100)]  # 100 calls in 10 s, the first at 0.0
        self.assertAlmostEqual(ratelimit.rolling_window_wait(calls, 100, 10.0, 9.9), 0.1)
        # fewer calls of ours than the window holds: others spent it, wait the whole interval
        self.assertEqual(ratelimit.rolling_window_wait(calls[:10], 100, 10.0, 9.9), 10)
        # ours of an earlier interval do not count: they are out of the window
        self.assertEqual(ratelimit.rolling_window_wait([c - 10 for c in calls] + calls[:50], 100, 10.0, 9.9), 10)
        # more of ours than the window holds (it grew, or some were refused elsewhere): the
        # limit-th latest call is the one that must age out
        self.assertAlmostEqual(ratelimit.rolling_window_wait(calls, 50, 10.0, 9.95), 5.05)
        self.assertAlmostEqual(ratelimit.rolling_window_wait(calls, 100, 10.0, 9.95), 0.05)
        self.assertEqual(ratelimit.rolling_window_wait(calls, 100, 10.0, 9.99), 0.05, "never less than a moment")

    def test_hubspot_secondly_and_daily_429(self):
        secondly = ratelimit.classify(429, {H + "Secondly-Remaining": "0"}, '{"policyName": "SECONDLY"}')
        self.assertEqual((secondly.wait, secondly.daily), (1.0, False))
        # the daily limit resets at midnight in the account's time zone, which the answer does not
        # give: no wait known (the connector waits its backoff cap), not the 10-second window
        daily = ratelimit.classify(429, dict(WINDOW, **{H + "Daily-Remaining": "0", H + "Remaining": "40"}),
                                   '{"policyName": "DAILY"}')
        self.assertEqual((daily.kind, daily.wait, daily.daily), ("rate_limited", None, True))
        with_hint = ratelimit.classify(429, {H + "Daily-Remaining": "0", "Retry-After": "600"},
                                       '{"policyName": "DAILY"}')
        self.assertEqual((with_hint.wait, with_hint.daily), (600.0, True))

    def test_retry_after_seconds_or_http_date_wins_over_the_window(self):
        self.assertEqual(ratelimit.classify(429, dict(WINDOW, **{"Retry-After": "3"}), "").wait, 3.0)
        with freeze_time("2026-11-20 10:00:00"):
            date = {"Retry-After": "Fri, 20 Nov 2026 10:02:00 GMT"}
            self.assertEqual(ratelimit.classify(429, date, "").wait, 120.0)
            self.assertEqual(ratelimit.classify(503, date, "").wait, 120.0)
            self.assertEqual(ratelimit.retry_after_header({"Retry-After": "Fri, 20 Nov 2026 09:00:00 GMT"}), 0.0)
            self.assertIsNone(ratelimit.retry_after_header({"Retry-After": "later"}))
        self.assertIsNone(ratelimit.classify(429, {}, "").wait, "nothing said: the caller's backoff")

    def test_salesforce_request_limit_exceeded(self):
        spent = ratelimit.classify(403, {"Sforce-Limit-Info": "api-usage=15000/15000"}, SF_LIMIT)
        self.assertEqual((spent.kind, spent.daily, spent.wait), ("rate_limited", True, None))
        self.assertEqual(spent.policy, "TotalRequests Limit exceeded.")
        concurrent = ratelimit.classify(403, {"Sforce-Limit-Info": "api-usage=20/15000"}, SF_CONCURRENT)
        self.assertEqual((concurrent.kind, concurrent.daily), ("rate_limited", False))
        refused = ratelimit.classify(403, {}, '[{"errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "message": "no"}]')
        self.assertEqual(refused.kind, "refused", "a 403 for anything else is the request's fault")
        self.assertEqual(ratelimit.classify(403, {}, "not json REQUEST_LIMIT_EXCEEDED").kind, "rate_limited")

    def test_5xx_and_other_answers(self):
        self.assertEqual(ratelimit.classify(502, {}, "<html>bad gateway</html>"),
                         ratelimit.Verdict("remote_unavailable"))
        self.assertEqual(ratelimit.classify(404, {}, "{}").kind, "refused")
        ok = ratelimit.classify(200, {H + "Remaining": "12", H + "Interval-Milliseconds": "10000"})
        self.assertEqual((ok.kind, ok.wait, ok.daily), ("ok", None, False))

    def test_a_call_that_spends_the_window_or_the_day_asks_for_a_pause(self):
        self.assertEqual(ratelimit.classify(200, WINDOW).wait, 10.0)
        self.assertTrue(ratelimit.classify(200, {"Sforce-Limit-Info": "api-usage=15000/15000"}).daily)
        self.assertTrue(ratelimit.classify(204, {H + "Daily-Remaining": "0", H + "Remaining": "5"}).daily)

    def test_quota_read_from_each_vendor(self):
        self.assertEqual(ratelimit.read_quota(WINDOW), ratelimit.Quota(
            remaining=0, limit=100, window_seconds=10.0, daily_remaining=499000, daily_limit=500000))
        self.assertEqual(ratelimit.read_quota({"Sforce-Limit-Info": "api-usage=25/15000"}),
                         ratelimit.Quota(daily_remaining=14975, daily_limit=15000))
        self.assertIsNone(ratelimit.read_quota({"Content-Type": "application/json"}))
        self.assertIsNone(ratelimit.read_quota({H + "Remaining": "lots"}))

    # ------------------------------------------------------------ breaker

    def test_breaker_opens_at_the_threshold_and_doubles_its_cooldown(self):
        policy = breaker.BreakerPolicy(threshold=5, cooldown=60, cooldown_cap=300)
        now = datetime(2026, 11, 20, 10, 0)
        stored = breaker.Stored()
        self.assertEqual(breaker.merge(stored, 4, False, policy, now),
                         breaker.Change("closed", 4, 0.0, None))
        opened = breaker.merge(breaker.Stored(failures=3), 2, False, policy, now)
        self.assertEqual((opened.state, opened.failures, opened.opened), ("open", 5, True))
        self.assertEqual((opened.cooldown, opened.probe_at), (60, now + timedelta(seconds=60)))
        # a success in between: only the failures after it count
        self.assertEqual(breaker.merge(breaker.Stored(failures=4), 2, True, policy, now).state, "closed")
        # an open breaker stays open whatever calls made before it opened answered
        still = breaker.merge(breaker.Stored("open", 5, 60, now), 0, True, policy, now)
        self.assertEqual((still.state, still.opened), ("open", False))
        failed = breaker.probed(breaker.Stored("half_open", 5, 60, now), False, policy, now)
        self.assertEqual((failed.state, failed.cooldown, failed.probe_at), ("open", 120, now + timedelta(seconds=120)))
        capped = breaker.probed(breaker.Stored("half_open", 6, 240, now), False, policy, now)
        self.assertEqual(capped.cooldown, 300)
        self.assertEqual(breaker.probed(breaker.Stored("half_open", 6, 240, now), True, policy, now),
                         breaker.Change("closed", 0, 0.0, None))

    def test_health_of_one_process(self):
        quiet = breaker.Health()
        self.assertFalse(quiet.breaker_due(), "nothing learned: nothing to write")
        quiet.note_success(0)
        self.assertFalse(quiet.breaker_due(), "a success with no stored failure writes nothing")
        self.assertFalse(quiet.note_failure("HTTP 503", 3, stored_failures=2),
                         "after a success of its own the process counts its failures only")
        health = breaker.Health()
        self.assertEqual([health.note_failure("HTTP 503", 3, stored_failures=1) for _i in range(2)], [False, True],
                         "the other processes' stored failures count: the breaker trips at the third")
        self.assertEqual(health.wait(100.0), (0.0, "breaker"))
        health.written(quota=False)
        self.assertIsNone(health.wait(100.0), "once written, the stored state is the one that counts")
        held = breaker.Health()
        self.assertTrue(held.note_failure("timeout", 1, now=100.0, hold=60.0))
        held.written(quota=False)
        self.assertEqual(held.wait(130.0), (30.0, "breaker"),
                         "the process that opened it waits its cooldown: its transaction may not see the opening")
        self.assertIsNone(held.wait(161.0))
        held.note_success(0)
        self.assertFalse(held.tripped_until)
        health.note_pause(130.0, "rate_limited")
        health.note_pause(110.0, "quota_spent")
        self.assertEqual(health.wait(100.0), (30.0, "rate_limited"), "the longest pause asked wins")
        self.assertFalse(health.pause_written)
        health.note_success(2)
        self.assertTrue(health.breaker_due(), "a success clears the failures stored by others")

    def test_health_places_the_rolling_window_with_the_process_calls(self):
        health = breaker.Health()
        for i in range(5):
            health.note_call(1000.0 + i)
        self.assertIsNone(health.window_wait(1004.0), "no answer reported the window yet")
        health.note_quota(ratelimit.Quota(remaining=0, limit=5, window_seconds=10.0), 1004.0)
        self.assertEqual((health.window_limit, health.window_seconds), (5, 10.0))
        self.assertAlmostEqual(health.window_wait(1004.0), 6.0, msg="until the first of the 5 calls is 10 s old")
        # an answer without the window (a bare 429, Salesforce's daily quota) keeps the last one
        health.note_quota(ratelimit.Quota(daily_remaining=10, daily_limit=100), 1004.5)
        self.assertEqual((health.window_limit, health.window_seconds), (5, 10.0))
        health.note_quota(ratelimit.Quota(remaining=0, limit=10, window_seconds=10.0), 1004.5)
        self.assertEqual(health.window_wait(1004.5), 10.0, "5 calls of its own out of 10: others spent the rest")
        health.written(quota=True)
        self.assertEqual(len(health.calls), 5, "the calls place the window across writes")
        for i in range(breaker.CALLS_KEPT + 10):
            health.note_call(2000.0 + i / 1000)
        self.assertEqual(len(health.calls), breaker.CALLS_KEPT)

    def test_quota_is_written_at_most_every_few_seconds_unless_spent(self):
        health = breaker.Health()
        health.note_quota(ratelimit.Quota(remaining=50, limit=100), 1000.0)
        self.assertTrue(health.quota_due(1000.0, 10.0))
        health.written(quota=True)
        health.note_quota(ratelimit.Quota(remaining=49, limit=100), 1003.0)
        self.assertFalse(health.quota_due(1003.0, 10.0))
        self.assertTrue(health.quota_due(1011.0, 10.0))
        health.note_quota(ratelimit.Quota(remaining=0, limit=100), 1004.0)
        self.assertTrue(health.quota_due(1004.0, 10.0), "a spent window is shown at once")

    # ------------------------------------------------------------ outcomes

    def test_a_rate_limit_is_retried_at_the_hint_without_charging_an_attempt(self):
        policy = oc.RetryPolicy(max_attempts=3, backoff_base=30, backoff_cap=3600)
        now = datetime(2026, 11, 20, 10, 0)
        limited = oc.of_exception(RateLimited("HTTP 429", retry_after=10, policy="TEN_SECONDLY_ROLLING"), 3)
        self.assertEqual((limited.kind, limited.reason, limited.charged), ("failed", "rate_limited", False))
        values = oc.settle(limited, 3, policy, now)
        self.assertEqual((values["state"], values["refund"]), ("retry", 1), "not dead at the last attempt")
        self.assertEqual(values["next_attempt_at"], now + timedelta(seconds=10), "the vendor's hint, not the backoff")
        no_hint = oc.settle(oc.of_exception(RateLimited("HTTP 429"), 2), 2, policy, now)
        self.assertTrue(now + timedelta(seconds=15) <= no_hint["next_attempt_at"] <= now + timedelta(seconds=30))
        # a 5xx is charged, and waits at least what the vendor asked
        unavailable = oc.settle(oc.of_exception(TransientError("HTTP 503", reason="remote_unavailable",
                                                               retry_after=100), 1), 1, policy, now)
        self.assertEqual(unavailable["refund"], 0)
        self.assertGreaterEqual(unavailable["next_attempt_at"], now + timedelta(seconds=100))
        self.assertEqual(oc.settle(oc.of_exception(TransientError("x", reason="network"), 3), 3, policy, now)["state"],
                         "dead")

    def test_a_paused_connector_gives_its_events_back(self):
        paused = oc.of_exception(ConnectorPaused("breaker open", reason="breaker_open", retry_after=42), 1)
        self.assertEqual((paused.kind, paused.retry_after), ("release", 42))
        self.assertTrue(paused.holds_its_object)
        self.assertIsNone(oc.release(0).retry_after)
