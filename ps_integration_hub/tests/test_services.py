import random
import time
from datetime import UTC, datetime

import requests
from freezegun import freeze_time

from odoo.tests import BaseCase, tagged

from ps_hub_fakes import FakeHubSpot, FakeSalesforce, load_fixture

from ..models.ps_hub_connector import retry_after_seconds
from ..services import budget, parsers
from ..services.backoff import backoff_delay


@tagged("post_install", "-at_install")
class TestServices(BaseCase):
    def test_backoff_grows_with_jitter_and_cap(self):
        rng = random.Random(7)
        for attempt, nominal in ((1, 30), (2, 60), (3, 120), (4, 240), (10, 3600)):
            delays = [backoff_delay(attempt, 30, 3600, rng) for _ in range(200)]
            self.assertGreaterEqual(min(delays), nominal / 2)
            self.assertLessEqual(max(delays), nominal)
            self.assertGreater(len({round(d, 3) for d in delays}), 150, "jittered")

    def test_retry_after_sources(self):
        self.assertEqual(retry_after_seconds({"Retry-After": "7"}), 7)
        self.assertEqual(retry_after_seconds({"X-HubSpot-RateLimit-Remaining": "0",
                                              "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}), 10)
        self.assertEqual(retry_after_seconds({"X-HubSpot-RateLimit-Secondly-Remaining": "0"}), 1)
        self.assertIsNone(retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    def test_salesforce_message_split_and_org(self):
        notes = [{"notification_id": f"04l00000000000{i}", "opportunity_id": f"006000000000000{i}",
                  "account_id": "001000000000000"} for i in range(3)]
        delivery = parsers.parse_salesforce(FakeSalesforce.outbound_message(notes, org_id="00D000000000001"))
        self.assertEqual(delivery.organization_id, "00D000000000001")
        self.assertEqual([e.idempotency_key for e in delivery.events], [n["notification_id"] for n in notes])
        self.assertEqual({e.event_type for e in delivery.events}, {"Opportunity.outbound_message"})
        self.assertEqual(delivery.events[0].ordering_key, "Opportunity:0060000000000000")

    def test_unparseable_xml_and_entities_are_not_expanded(self):
        bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                b"<x>&b;</x>")
        delivery = parsers.parse_salesforce(bomb)
        self.assertEqual(delivery.events[0].event_type, "malformed")
        self.assertEqual(parsers.parse_salesforce(b"<not xml").events[0].event_type, "malformed")

    def test_hubspot_partial_batch_keeps_good_events(self):
        body = b'[{"eventId": 1, "subscriptionType": "deal.creation", "objectId": 5}, {"objectId": 6}, 7]'
        events = parsers.parse_hubspot(body).events
        self.assertEqual([e.event_type for e in events], ["deal.creation", "malformed", "malformed"])
        self.assertNotEqual(events[1].idempotency_key, events[2].idempotency_key)

    def test_content_types(self):
        self.assertTrue(parsers.content_type_ok("hubspot", "application/json; charset=utf-8"))
        self.assertTrue(parsers.content_type_ok("salesforce", "text/xml; charset=utf-8"))
        self.assertFalse(parsers.content_type_ok("salesforce", "application/json"))
        self.assertFalse(parsers.content_type_ok("stripe", None))

    def test_stripe_and_bamboohr_keys(self):
        stripe_event = parsers.parse_stripe(load_fixture("stripe/invoice_paid.json").encode()).events[0]
        self.assertEqual((stripe_event.idempotency_key, stripe_event.ordering_key),
                         ("evt_1QxR2aLkdIwHu7ix0Lk3sP9c", "invoice:in_1QxR1zLkdIwHu7ixAbC12345"))
        body = load_fixture("bamboohr/webhook_employee_updated.json").encode()
        first, again = parsers.parse_bamboohr(body).events[0], parsers.parse_bamboohr(body).events[0]
        self.assertEqual(first.idempotency_key, again.idempotency_key, "a redelivery has the same key")
        self.assertEqual(first.ordering_key, "employee:1207")

    # ------------------------------------------------------------ engine: time budget, Retry-After, fakes

    def test_run_budget_stays_inside_odoo_limits(self):
        defaults = {"limit_time_real": 120, "limit_time_real_cron": -1, "limit_time_cpu": 60}
        # prefork: the watchdog also counts the runner's idle sleep (up to 69 s) before the run
        prefork = budget.usable_seconds(**defaults, prefork=True)
        self.assertEqual(prefork, 50)
        self.assertLess(budget.PREFORK_IDLE_SLEEP + prefork * budget.CALL_SHARE, 120)
        self.assertLess(prefork, 60, "CPU time cannot run past the limit either")
        # threaded: the thread's clock starts with its pass; the smaller limit wins
        self.assertEqual(budget.usable_seconds(**defaults, prefork=False), 60)
        self.assertEqual(budget.usable_seconds(limit_time_real=600, limit_time_real_cron=300, limit_time_cpu=900,
                                               prefork=False), 300)
        self.assertEqual(budget.usable_seconds(limit_time_real=600, limit_time_real_cron=900, limit_time_cpu=900,
                                               prefork=True), 830)
        # limits switched off: runs still end; a tight configuration still leaves some time
        self.assertEqual(budget.usable_seconds(limit_time_real=0, limit_time_real_cron=0, limit_time_cpu=0,
                                               prefork=True), budget.NO_LIMIT_SECONDS)
        self.assertEqual(budget.usable_seconds(limit_time_real=60, limit_time_real_cron=-1, limit_time_cpu=3,
                                               prefork=True), budget.MIN_SECONDS)

    def test_run_budget_deadlines_and_claim_size(self):
        with freeze_time("2026-11-20 10:00:00") as clock:
            run = budget.RunBudget(started=time.monotonic(), seconds=50)
            self.assertTrue(run.can_claim())
            self.assertEqual(run.claim_size(50, None), budget.PROBE_BATCH, "slowness unknown: a small batch")
            self.assertEqual(run.claim_size(50, 0.002), 50)
            self.assertEqual(run.claim_size(50, 6.0), 6, "30 s left to start events at 6 s each")
            clock.tick(19)
            self.assertTrue(run.can_claim())
            self.assertEqual(run.claim_size(50, 6.0), 2)
            clock.tick(1)
            self.assertFalse(run.can_claim(), "claims stop at 40% of the usable time")
            self.assertEqual((run.start_until - run.started, run.call_until - run.started), (30, 40))
            clock.tick(60)
            self.assertEqual(run.claim_size(50, 6.0), 1)
        unbounded = budget.unbounded()
        self.assertTrue(unbounded.can_claim())
        self.assertEqual(unbounded.claim_size(50, 6.0), 50)

    def test_retry_after_http_date(self):
        with freeze_time("2026-11-20 10:00:00"):
            self.assertEqual(retry_after_seconds({"Retry-After": "Fri, 20 Nov 2026 10:02:00 GMT"}), 120)
            self.assertEqual(retry_after_seconds({"Retry-After": "120"}), 120)
            # the obsolete asctime form, which RFC 9110 still asks recipients to accept
            self.assertEqual(retry_after_seconds({"Retry-After": "Fri Nov 20 10:00:30 2026"}), 30)
            self.assertIsNone(retry_after_seconds({"Retry-After": "Fri, 20 Nov 2026 09:59:00 GMT"}), "passed")
            self.assertIsNone(retry_after_seconds({"Retry-After": "soon"}))

    def test_fake_hubspot_429_shows_the_policy_hit(self):
        with FakeHubSpot() as fake:
            fake.rate_limit_next(1, policy="SECONDLY")
            fake.rate_limit_next(1, retry_after=7)
            fake.rate_limit_next(1, policy="DAILY", retry_after=datetime(2026, 11, 20, 10, 2, tzinfo=UTC))
            url, auth = f"{fake.base_url}/crm/v3/objects/deals/19077001", {"Authorization": "Bearer x"}
            secondly, windowed, daily = (requests.get(url, headers=auth, timeout=5) for _ in range(3))
        self.assertEqual([r.status_code for r in (secondly, windowed, daily)], [429] * 3)
        self.assertEqual(secondly.json()["policyName"], "SECONDLY")
        self.assertEqual(secondly.headers["X-HubSpot-RateLimit-Secondly-Remaining"], "0")
        self.assertNotEqual(secondly.headers["X-HubSpot-RateLimit-Remaining"], "0", "only the limit hit is spent")
        self.assertNotIn("Retry-After", secondly.headers, "HubSpot promises no Retry-After")
        self.assertEqual(retry_after_seconds(secondly.headers), 1)
        self.assertEqual(windowed.headers["X-HubSpot-RateLimit-Remaining"], "0")
        self.assertEqual(windowed.headers["Retry-After"], "7")
        self.assertEqual(daily.headers["X-HubSpot-RateLimit-Daily-Remaining"], "0")
        self.assertEqual(daily.headers["Retry-After"], "Fri, 20 Nov 2026 10:02:00 GMT")
        with freeze_time("2026-11-20 10:00:00"):
            self.assertEqual(retry_after_seconds(daily.headers), 120)
