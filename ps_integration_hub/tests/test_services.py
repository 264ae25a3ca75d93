import random

from odoo.tests import BaseCase, tagged

from ps_hub_fakes import FakeSalesforce, load_fixture

from ..models.ps_hub_connector import retry_after_seconds
from ..services import parsers
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
