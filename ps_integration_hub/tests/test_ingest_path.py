import json
import select
from datetime import datetime

import psycopg2

from odoo import sql_db
from odoo.exceptions import UserError
from odoo.tests import tagged

from ps_hub_fakes.salesforce import FakeSalesforce

from ..models import ir_cron as hub_cron
from ..services import parsers
from .common import HubCase


@tagged("post_install", "-at_install")
class TestIngestPath(HubCase):
    """What the inbound route does on every delivery: find the connector, store, wake the workers."""

    def stored(self, events):
        events.flush_recordset()
        self.env.cr.execute(
            "SELECT event_type, event_type_id, external_id, idempotency_key, ordering_key, payload, payload_raw, "
            "headers, state, error_class, reason, last_error, occurred_at, held, attempts, system, company_id "
            "FROM ps_hub_event WHERE id = ANY(%s) ORDER BY id", [events.ids])
        return self.env.cr.dictfetchall()

    def stored_type_ids(self, events):
        """The event_type_id of ``events`` as stored in the database (not as cached), by id."""
        self.env.flush_all()
        self.env.cr.execute("SELECT event_type_id FROM ps_hub_event WHERE id = ANY(%s) ORDER BY id", [events.ids])
        return [row[0] for row in self.env.cr.fetchall()]

    def test_enqueue_stores_each_value(self):
        self.maxDiff = None
        type_id = self.env["ps.hub.event.type"].sudo().create({
            "name": "Test ingest", "system": "hubspot", "code": "test.ingestPath",
            "handler_model_id": self.env["ir.model"]._get_id("ps.hub.handler.record.only"),
        }).id
        body = [
            {"eventId": 1, "portalId": 7, "subscriptionType": "test.ingestPath", "objectId": 42,
             "occurredAt": 1764400000123, "propertyValue": "é \u2028 😀 \"quoted\" \\ back", "n": 1.5},
            {"eventId": 2, "portalId": 7, "subscriptionType": "test.ingestPath", "objectId": 42},
            ["not an object"],
            {"eventId": 3, "portalId": 7, "subscriptionType": "contact.creation", "objectId": 0},
        ]
        events, duplicates = self.enqueue(self.hubspot, body, {"Content-Type": "application/json",
                                                               "X-HubSpot-Signature-v3": "not kept",
                                                               "X-Request-Id": "r\x00id"})
        self.assertEqual(duplicates, 0)
        rows = self.stored(events)
        self.assertEqual(len(rows), 4)
        self.assertEqual(sorted(events.ids), events.ids, "ids in the order of the delivery")
        first, second, malformed, other = rows
        headers = {"Content-Type": "application/json", "X-Request-Id": "r\ufffdid"}
        self.assertEqual(first, {
            "event_type": "test.ingestPath", "event_type_id": type_id, "external_id": "42",
            "idempotency_key": "7:1", "ordering_key": "test:42", "payload": body[0], "payload_raw": None,
            "headers": headers, "state": "pending", "error_class": None, "reason": None, "last_error": None,
            "occurred_at": datetime(2025, 11, 29, 7, 6, 40, 123000), "held": False, "attempts": 0,
            "system": "hubspot", "company_id": self.hubspot.company_id.id,
        })
        self.assertEqual((second["idempotency_key"], second["occurred_at"], second["held"]), ("7:2", None, True),
                         "the second event of object 42 waits behind the first")
        self.assertEqual(
            {k: malformed[k] for k in ("event_type", "event_type_id", "payload", "payload_raw", "state",
                                       "error_class", "reason", "last_error", "held", "ordering_key")},
            {"event_type": "malformed", "event_type_id": None, "payload": None,
             "payload_raw": json.dumps(["not an object"], sort_keys=True), "state": "exception",
             "error_class": "permanent", "reason": "malformed",
             "last_error": "HubSpot event that is not a JSON object", "held": False, "ordering_key": None})
        self.assertEqual((other["external_id"], other["ordering_key"], other["held"], other["event_type_id"]),
                         (None, None, False, self.env["ps.hub.event.type"]._hub_type_ids().get(
                             ("hubspot", "contact.creation"))))
        # a later delivery of the same object is held behind the queued ones; a redelivery is a duplicate
        later, _dup = self.enqueue(self.hubspot, [{"eventId": 4, "portalId": 7, "objectId": 42,
                                                   "subscriptionType": "test.ingestPath"}])
        self.assertTrue(self.stored(later)[0]["held"])
        again, duplicates = self.enqueue(self.hubspot, body)
        self.assertEqual((again.ids, duplicates), ([], 4))

    def test_one_event_alone_is_stored_as_in_a_batch(self):
        """Events delivered one by one are stored as the same events delivered together: every
        value, malformed events, payloads read from the body and payloads from Python
        (Salesforce's XML) included; an event waits behind an earlier one of its object whether
        that one came in the same delivery (the UPDATE after the INSERT) or an earlier one (the
        INSERT's own check)."""
        self.maxDiff = None
        self.env["ps.hub.event.type"].sudo().create({
            "name": "Test alone", "system": "hubspot", "code": "test.alone",
            "handler_model_id": self.env["ir.model"]._get_id("ps.hub.handler.record.only"),
        })
        items = [
            {"eventId": 1, "portalId": 7, "subscriptionType": "test.alone", "objectId": 42,
             "occurredAt": 1764400000123, "propertyValue": "é \u2028 😀 \"q\" \\ \t", "n": 1.5},
            {"eventId": 2, "portalId": 7, "subscriptionType": "test.alone", "objectId": 42},
            ["not an object"],
            {"eventId": 3, "portalId": 7, "subscriptionType": "contact.creation", "objectId": 0},
        ]
        notes = [{"notification_id": f"04l5e00000CxY{i:03d}AAF", "opportunity_id": f"0065e00000GhI{i:03d}AAV",
                  "account_id": "0015e00000QrStUAAV", "amount": 1000 + i} for i in range(2)]
        headers = {"Content-Type": "application/json", "X-Request-Id": "r-1"}
        alone = {c: c.sudo().copy({"name": f"{c.name} (alone)"}) for c in (self.hubspot, self.salesforce)}
        batches = [
            (self.hubspot, json.dumps(items).encode(), [json.dumps([item]).encode() for item in items]),
            (self.salesforce, FakeSalesforce.outbound_message(notes),
             [FakeSalesforce.outbound_message([note]) for note in notes]),
        ]
        for connector, batch, singles in batches:
            with self.subTest(system=connector.system):
                together, _dup = self.enqueue(connector, batch, headers)
                one_by_one = self.env["ps.hub.event"]
                for body in singles:
                    delivery = alone[connector]._hub_parse_delivery(body, headers)
                    self.assertEqual(len(delivery.events), 1)
                    one_by_one |= self.enqueue(alone[connector], body, headers)[0]
                self.assertEqual(len(together), len(singles))
                self.assertEqual(self.stored(one_by_one), self.stored(together))
                self.assertTrue(any(row["held"] for row in self.stored(one_by_one)) or connector == self.salesforce)
                again, duplicates = self.enqueue(alone[connector], singles[0], headers)
                self.assertEqual((again.ids, duplicates), ([], 1), "a single event redelivered is a duplicate")

    def test_payloads_read_out_of_the_body_as_sent(self):
        """The database takes each payload out of the body (ParsedEvent.payload_index): the
        stored payload is the vendor's JSON value, whatever its spacing, escapes and numbers."""
        item = {"eventId": 31, "portalId": 7, "subscriptionType": "company.creation", "objectId": 9,
                "n": 1.25, "big": 12345678901234567890, "text": "é \u2028 😀 \"q\" \\ / \t"}
        text = json.dumps(item, ensure_ascii=True, indent=3)
        cases = [
            (self.hubspot, ("[ " + text + " ,\n" + text.replace("31", "32", 1) + "]").encode(),
             [item, dict(item, eventId=32)]),
            (self.hubspot, text.replace("31", "33", 1).encode(), [dict(item, eventId=33)]),  # one object
            (self.stripe, json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1764400000,
                                      "data": {"object": {"id": "in_1", "object": "invoice", "x": 0.1}}}).encode(),
             [{"id": "evt_1", "type": "invoice.paid", "created": 1764400000,
               "data": {"object": {"id": "in_1", "object": "invoice", "x": 0.1}}}]),
            (self.bamboohr, b'{"type": "employee.updated", "data": {"employeeId": "12", "k": [1, 2.5e3]}}',
             [{"type": "employee.updated", "data": {"employeeId": "12", "k": [1, 2500.0]}}]),
        ]
        for connector, body, payloads in cases:
            with self.subTest(system=connector.system, body=body[:40]):
                delivery = connector._hub_parse_delivery(body, {})
                self.assertIsNotNone(delivery.json_text)
                self.assertTrue(all(ev.payload_index is not None for ev in delivery.events))
                events, _dup = self.enqueue(connector, body)
                self.assertEqual([row["payload"] for row in self.stored(events)], payloads)
        # events of other portals dropped from a delivery: the others keep their own payloads
        self.hubspot.sudo().hubspot_portal_id = "7"
        body = json.dumps([dict(item, eventId=41, portalId=8), dict(item, eventId=42), dict(item, eventId=43)])
        delivery = self.hubspot._hub_parse_delivery(body.encode(), {})
        self.assertEqual(self.hubspot._hub_check_delivery(delivery), 1)
        ids, _dup = self.env["ps.hub.event"]._hub_enqueue(self.hubspot, delivery, {})
        self.assertEqual([row["payload"]["eventId"] for row in self.stored(self.env["ps.hub.event"].browse(ids))],
                         [42, 43])

    def test_enqueue_keeps_a_malformed_body_losslessly(self):
        body = b"\x00\xff[not json"
        events, _dup = self.enqueue(self.hubspot, body)
        row = self.stored(events)[0]
        self.assertEqual((row["state"], row["reason"], row["payload"]), ("exception", "malformed", None))
        self.assertEqual(parsers.raw_bytes(row["payload_raw"]), body)

    def test_find_by_token_reads_the_connector_once_per_process(self):
        Connector = self.env["ps.hub.connector"]
        token = self.hubspot.sudo().inbound_token
        self.assertEqual(Connector._hub_inbound_fields()[0], "system")
        self.env.registry.clear_cache()
        self.env.invalidate_all()
        with self.assertQueryCount(1):
            connector = Connector._hub_find_by_token(token)
            values = [connector[name] for name in Connector._hub_inbound_fields()]
        self.assertEqual(connector, self.hubspot)
        self.assertEqual(values[0], "hubspot")
        self.env.invalidate_all()
        with self.assertQueryCount(0):  # the next deliveries: from the per-process cache
            connector = Connector._hub_find_by_token(token)
            self.assertEqual([connector[name] for name in Connector._hub_inbound_fields()], values)
        # a changed field is read again (the write clears the cache of every process)
        self.hubspot.sudo().max_body_bytes = 4321
        self.env.invalidate_all()
        self.assertEqual(Connector._hub_find_by_token(token).max_body_bytes, 4321)
        # a rotated secret: verified against the new one at once
        self.hubspot.sudo().signing_secret = "rotated-secret"
        self.env.invalidate_all()
        self.assertEqual(Connector._hub_find_by_token(token)._hub_signing_secrets()[0], "rotated-secret")
        # an unknown token is not cached: a connector given that token later is found
        self.assertFalse(Connector._hub_find_by_token("no-such-token"))
        other = self.hubspot.sudo().copy({"name": "found later"})
        other.inbound_token = "no-such-token"
        self.env.invalidate_all()
        self.assertEqual(Connector._hub_find_by_token("no-such-token"), other)
        self.assertFalse(Connector._hub_find_by_token("x" * 129))
        self.assertFalse(Connector._hub_find_by_token(""))
        self.hubspot.active = False
        self.assertFalse(Connector._hub_find_by_token(token), "an archived connector takes nothing")
        other.unlink()
        self.assertFalse(Connector._hub_find_by_token("no-such-token"), "a deleted connector takes nothing")

    def test_enqueue_triggers_each_worker_cron_once(self):
        crons = self.env["ps.hub.event"]._hub_worker_cron_ids()
        self.assertEqual(len(crons), 2)
        self.env["ir.cron"].browse(crons).write({"active": True})
        self.env.cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id = ANY(%s)", [crons])

        def due_triggers():
            self.env.cr.execute(
                "SELECT cron_id, count(*) FROM ir_cron_trigger WHERE cron_id = ANY(%s) "
                "AND call_at <= clock_timestamp() AT TIME ZONE 'UTC' GROUP BY cron_id ORDER BY cron_id", [crons])
            return self.env.cr.fetchall()

        body = [{"eventId": 11, "portalId": 7, "subscriptionType": "company.creation", "objectId": 5}]
        self.enqueue(self.hubspot, body)
        self.env["ir.cron.trigger"].flush_model()
        self.assertEqual(due_triggers(), [(crons[0], 1), (crons[1], 1)])
        # a due trigger is there: the next deliveries add none, and duplicates never trigger
        self.enqueue(self.hubspot, [dict(body[0], eventId=12)])
        self.enqueue(self.hubspot, body)
        self.env["ir.cron.trigger"].flush_model()
        self.assertEqual(due_triggers(), [(crons[0], 1), (crons[1], 1)])
        # a cron switched off is not triggered
        self.env.cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id = ANY(%s)", [crons])
        self.env["ir.cron"].browse(crons[1]).active = False
        self.enqueue(self.hubspot, [dict(body[0], eventId=13)])
        self.env["ir.cron.trigger"].flush_model()
        self.assertEqual(due_triggers(), [(crons[0], 1)])

    def event_foreign_keys(self):
        self.env.cr.execute(
            "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = ANY(c.conkey) WHERE c.conrelid = 'ps_hub_event'::regclass AND c.contype = 'f' "
            "ORDER BY 1")
        return [row[0] for row in self.env.cr.fetchall()]

    def test_no_foreign_key_on_the_shared_rows_and_the_orm_keeps_integrity(self):
        keys = self.event_foreign_keys()
        self.assertNotIn("connector_id", keys)
        self.assertNotIn("company_id", keys)
        self.assertIn("mapping_version_id", keys, "the other many2ones keep theirs")
        unused = self.hubspot.sudo().copy({"name": "no events"})
        self.enqueue(self.hubspot, [{"eventId": 21, "portalId": 7, "subscriptionType": "company.creation",
                                     "objectId": 5}])
        with self.assertRaisesRegex(UserError, "Connectors with events cannot be deleted"):
            self.hubspot.sudo().unlink()
        unused.unlink()
        self.assertFalse(unused.exists())

    def test_no_foreign_key_on_the_event_type(self):
        self.assertNotIn("event_type_id", self.event_foreign_keys())

    def test_deleting_an_event_type_empties_it_on_its_events(self):
        handler = self.env["ir.model"]._get_id("ps.hub.handler.record.only")
        deleted, shipped, kept = self.env["ps.hub.event.type"].sudo().create([
            {"name": f"Test {code}", "system": "hubspot", "code": f"test.{code}", "handler_model_id": handler}
            for code in ("deletedType", "shippedType", "keptType")
        ])
        # shipped as data by a module, which is then uninstalled: the uninstall unlinks the record
        self.env["ir.model.data"].create({"module": "ps_hub_test_uninstalled", "name": "shipped_type",
                                          "model": "ps.hub.event.type", "res_id": shipped.id})
        events, _duplicates = self.enqueue(self.hubspot, [
            {"eventId": 31 + n, "portalId": 7, "subscriptionType": f"test.{code}", "objectId": 8}
            for n, code in enumerate(("deletedType", "deletedType", "shippedType", "keptType"))
        ])

        self.assertEqual(self.stored_type_ids(events), [deleted.id, deleted.id, shipped.id, kept.id])
        self.assertEqual(events.sorted("id")[0].event_type_id, deleted, "read into the cache")

        deleted.unlink()
        self.assertEqual(self.stored_type_ids(events), [None, None, shipped.id, kept.id])
        self.assertEqual(events.exists(), events, "the events stay")
        self.assertFalse(events.sorted("id")[0].event_type_id, "the cache does not keep the deleted type")

        self.env["ir.model.data"]._module_data_uninstall(["ps_hub_test_uninstalled"])
        self.assertFalse(shipped.exists())
        self.assertEqual(self.stored_type_ids(events), [None, None, None, kept.id])
        self.assertEqual(events.exists(), events)

    def test_deleting_a_handler_model_empties_its_types_on_their_events(self):
        """The types of a handler go with its model (handler_model_id is ondelete="cascade"),
        through the ORM, so that their events lose their type instead of keeping a deleted one."""
        handler = self.env["ir.model"].create({"name": "Test deleted handler", "model": "x_hub_test.handler"})
        record_only = self.env["ir.model"]._get_id("ps.hub.handler.record.only")
        deleted, archived, kept = self.env["ps.hub.event.type"].sudo().create([
            {"name": f"Test {code}", "system": "hubspot", "code": f"test.{code}", "handler_model_id": record_only}
            for code in ("deletedHandler", "archivedType", "keptHandler")
        ])
        # A type checks that its handler is a model inheriting ps.hub.handler, which a manual
        # model cannot be, and only a manual model can be deleted outside of an uninstall: the
        # two types get the manual model as handler in SQL, behind that check only.
        self.env.cr.execute("UPDATE ps_hub_event_type SET handler_model_id = %s, handler_model = %s WHERE id IN %s",
                            [handler.id, handler.model, (deleted.id, archived.id)])
        (deleted | archived).invalidate_recordset(["handler_model_id", "handler_model"])
        events, _duplicates = self.enqueue(self.hubspot, [
            {"eventId": 41 + n, "portalId": 7, "subscriptionType": f"test.{code}", "objectId": 9}
            for n, code in enumerate(("deletedHandler", "deletedHandler", "archivedType", "keptHandler"))
        ])
        archived.active = False

        self.assertEqual(self.stored_type_ids(events), [deleted.id, deleted.id, archived.id, kept.id])
        self.assertEqual(events.sorted("id")[0].event_type_id, deleted, "read into the cache")

        handler.unlink()
        self.assertFalse(handler.exists())
        self.assertFalse((deleted | archived).exists(), "the handler's types, archived too, are deleted")
        self.assertTrue(kept.exists())
        self.assertEqual(self.stored_type_ids(events), [None, None, None, kept.id])
        self.assertEqual(events.exists(), events, "the events stay")
        self.assertFalse(events.sorted("id")[0].event_type_id, "the cache does not keep the deleted type")

    def test_notify_runners_on_a_kept_connection(self):
        listener = psycopg2.connect(**sql_db.connection_info_for("postgres")[1])
        listener.autocommit = True
        self.addCleanup(listener.close)
        with listener.cursor() as cr:
            cr.execute("LISTEN cron_trigger")

        def received():
            payloads, deadline = [], 50
            while deadline and len(payloads) < 1:
                select.select([listener], [], [], 0.1)
                listener.poll()
                payloads += [n.payload for n in listener.notifies]
                listener.notifies.clear()
                deadline -= 1
            return payloads

        Cron = self.env["ir.cron"]
        Cron._hub_notify_runners()
        self.assertEqual(received(), [self.env.cr.dbname])
        kept = hub_cron._NOTIFY["conn"]
        self.assertTrue(kept and not kept.closed)
        Cron._hub_notify_runners()
        self.assertEqual(received(), [self.env.cr.dbname])
        self.assertIs(hub_cron._NOTIFY["conn"], kept, "the connection is kept, not opened again")
        # the server ends it: this call still notifies (Odoo's way), the next one opens a new one
        with listener.cursor() as cr:
            cr.execute("SELECT pg_terminate_backend(%s)", [kept.info.backend_pid])
        Cron._hub_notify_runners()
        self.assertEqual(received(), [self.env.cr.dbname])
        Cron._hub_notify_runners()
        self.assertEqual(received(), [self.env.cr.dbname])
        self.assertIsNot(hub_cron._NOTIFY["conn"], kept)
