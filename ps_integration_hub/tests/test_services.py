import hashlib
import json
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

    def test_hubspot_key_includes_the_portal(self):
        """HubSpot documents eventId as not guaranteed unique: the key is <portalId>:<eventId>."""
        body = json.dumps([
            {"eventId": 7, "portalId": 111, "subscriptionType": "deal.creation", "objectId": 5},
            {"eventId": 7, "portalId": 222, "subscriptionType": "deal.creation", "objectId": 5},
            {"eventId": 8, "subscriptionType": "deal.creation", "objectId": 5},
        ]).encode()
        events = parsers.parse_hubspot(body).events
        self.assertEqual([e.idempotency_key for e in events], ["111:7", "222:7", "8"])
        self.assertEqual([e.portal_id for e in events], ["111", "222", None])
        fixture = parsers.parse_hubspot(load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.assertEqual([e.idempotency_key for e in fixture.events], ["8765432:3817561001", "8765432:3817561002"])

    def test_raw_text_is_lossless_and_storable(self):
        rng = random.Random(11)
        bodies = [b"", b"plain text", "caf\u00e9 \u2603".encode(), b"nul\x00inside", b"\xff\xfe\x00\x80",
                  parsers.RAW_BASE64_MARKER.encode() + b"looks encoded", bytes(range(256)),
                  b"\xed\xa0\x80 encoded surrogate"]
        bodies += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(200)]
        for body in bodies:
            raw = parsers.raw_text(body)
            self.assertNotIn("\x00", raw)
            raw.encode("utf-8")  # no surrogate either: PostgreSQL text takes it
            self.assertEqual(parsers.raw_bytes(raw), body)
        self.assertEqual(parsers.raw_text(b'{"a": 1}'), '{"a": 1}', "text stays readable as is")
        self.assertTrue(parsers.raw_text(b"a\x00").startswith(parsers.RAW_BASE64_MARKER))

    def test_hostile_bodies_parse_into_storable_events(self):
        """No parser raises on what an authentic sender may still send, and what it returns
        can be stored as is: the bodies that got a 500 before, and their cousins."""
        deep = b"[" * 100_000 + b"]" * 100_000
        hubspot_event = {"eventId": 1, "portalId": 9, "subscriptionType": "deal.creation", "objectId": 5,
                         "occurredAt": 1763632800000}

        def hs(**changes):
            return json.dumps([{**hubspot_event, **changes}]).encode()

        cases = [
            ("hubspot", b"\x00\x9f random \x00 bytes \xff", "malformed"),
            ("hubspot", deep, "malformed"),
            ("hubspot", b'{"a": ' * 70 + b"1" + b"}" * 70, "malformed"),
            ("hubspot", hs(subscriptionType=42), "malformed"),
            ("hubspot", hs(subscriptionType=["deal"]), "malformed"),
            ("hubspot", hs(eventId={"id": 1}), "malformed"),
            ("hubspot", hs(eventId="x" * 5000), "malformed"),
            ("hubspot", hs(objectId="a\x00b"), "malformed"),
            ("hubspot", hs(portalId=[1]), "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v": NaN}]', "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v": Infinity}]', "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v": 1e400}]', "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v": "a\\u0000b"}]', "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v\\u0000": 1}]', "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v": "\\ud800"}]', "malformed"),
            ("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation", "v": ' + b"9" * 5000 + b"}]",
             "malformed"),
            ("hubspot", hs(occurredAt=1e20), "deal.creation"),
            ("hubspot", hs(occurredAt=-1e20), "deal.creation"),
            ("hubspot", hs(occurredAt="soon"), "deal.creation"),
            ("hubspot", hs(v="\ud83d\ude00 paired surrogates are fine"), "deal.creation"),
            ("stripe", b'{"id": "evt_1", "type": "invoice.paid", "data": [1, 2]}', "malformed"),
            ("stripe", b'{"id": "evt_1", "type": "invoice.paid", "data": {"object": [1]}}', "invoice.paid"),
            ("stripe", b'{"id": 5, "type": {"t": 1}}', "malformed"),
            ("stripe", b'{"id": "evt_1", "type": "invoice.paid", "created": 1e20}', "invoice.paid"),
            ("stripe", b'{"id": "evt_1", "type": "x", "data": {"object": {"id": {"a": 1}}}}', "x"),
            ("bamboohr", b'{"type": 3, "data": {}}', "malformed"),
            ("bamboohr", b'{"type": "employee.updated", "data": {"employeeId": [1]}}', "malformed"),
            ("bamboohr", b'{"type": "employee.updated", "data": []}', "malformed"),
            ("standard", b'{"type": 3}', "malformed"),
            ("standard", b'{"type": "a", "data": {"id": {"x": 1}}}', "malformed"),
            ("standard", b'[1, NaN]', "malformed"),
            ("standard", b'"just a string"', "message"),
            ("salesforce", b"<a>\x00</a>", "malformed"),
            ("salesforce", b"<a>" * 300 + b"</a>" * 300, "malformed"),
        ]
        kept_whole = 0
        for system, body, expected_type in cases:
            with self.subTest(system=system, body=body[:60]):
                headers = {"webhook-id": "msg_1", "webhook-timestamp": "99" * 200} if system == "standard" else {}
                events = parsers.PARSERS[system](body, headers).events  # not the safety net
                self.assertEqual(events[0].event_type, expected_type)
                for event in events:
                    self.assert_storable(event)
                whole_body = events[0].idempotency_key == "sha256:" + hashlib.sha256(body).hexdigest()
                if events[0].parse_error and (whole_body or system == "standard"):
                    self.assertEqual(parsers.raw_bytes(events[0].raw), body, "kept losslessly")
                    kept_whole += 1
        self.assertGreaterEqual(kept_whole, 10)
        hostile_id = parsers.parse_standard(b"{}", {"webhook-id": "a\x00" * 300}).events[0]
        self.assert_storable(hostile_id)
        self.assertEqual(hostile_id.idempotency_key,
                         parsers.parse_standard(b"[]", {"webhook-id": "a\x00" * 300}).events[0].idempotency_key)

    def assert_storable(self, event):
        for value in (event.event_type, event.idempotency_key, event.external_id, event.ordering_key):
            if value is not None:
                self.assertIsInstance(value, str)
                self.assertTrue(value.isprintable() and len(value) <= 600, value[:80])
        self.assertTrue(event.event_type)
        self.assertTrue(event.idempotency_key)
        if event.payload is not None:
            self.assertIsNone(parsers._jsonb_problem(event.payload, json.dumps(event.payload)))
            json.dumps(event.payload, allow_nan=False)
        if event.raw is not None:
            self.assertNotIn("\x00", event.raw)
            event.raw.encode("utf-8")
        if event.occurred_at is not None:
            self.assertTrue(1 <= event.occurred_at.year <= 9999)

    def test_parse_delivery_keeps_the_body_when_a_parser_fails(self):
        from unittest.mock import patch  # noqa: PLC0415

        def broken(body, headers=None):
            raise RuntimeError("bug")
        with patch.dict(parsers.PARSERS, {"stripe": broken}), self.assertLogs(parsers.__name__, "ERROR"):
            delivery = parsers.parse_delivery("stripe", b"\x00body")
        event = delivery.events[0]
        self.assertEqual((event.event_type, event.parse_error), ("malformed", "parser failure: RuntimeError"))
        self.assertEqual(parsers.raw_bytes(event.raw), b"\x00body")
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
