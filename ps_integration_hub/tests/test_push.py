import os
import time
from unittest.mock import patch

from odoo import Command, fields
from odoo.tests import TransactionCase, tagged

from .common import HubCaseMixin, patched_handler

DEAL = "19077001"
OPPORTUNITY = "0065e00000GhIjKAAV"


def property_change(event_id, object_id, name, value, occurred_ms=None):
    return {"eventId": event_id, "subscriptionType": "deal.propertyChange", "objectId": int(object_id),
            "propertyName": name, "propertyValue": value,
            "occurredAt": occurred_ms or int(time.time() * 1000)}


@tagged("post_install", "-at_install")
class TestPush(HubCaseMixin, TransactionCase):
    """The outbox: pushes queued with the business change, collapsed, sent by the workers to the
    fake vendors (single and batch calls, partial errors, rate limits), and their echoes ignored."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.start_fake_vendors()
        cls.Event = cls.env["ps.hub.event"]
        cls.Binding = cls.env["ps.hub.binding"]
        cls.client = cls.env["res.partner"].create({"name": "Northwind Legal", "ref": "NW-1"})
        cls.Binding._hub_bind(cls.hubspot, "deal", DEAL, cls.client)
        cls.Binding._hub_bind(cls.salesforce, "Opportunity", OPPORTUNITY, cls.client)

    def setUp(self):
        super().setUp()
        self.fake_hubspot.reset()
        self.fake_salesforce.reset()
        self.startPatcher(patch.dict("odoo.addons.ps_integration_hub.models.ps_hub_connector._TOKENS", clear=True))
        # each test starts with HubSpot's rate-limit window unseen by this process: HubCaseMixin
        # forgets the connectors' health (_HEALTH), which keeps the window's calls

    def push(self, records, values, connector=None, external_model="deal", **kwargs):
        values_list = values if isinstance(values, list) else [values] * len(records)
        return self.Event._hub_enqueue_push(connector or self.hubspot, records, external_model, values_list,
                                            **kwargs)

    def hubspot_calls(self):
        return [(r.method, r.path) for r in self.fake_hubspot.requests]

    def deals(self, count, start=30000001):
        """``count`` partners, each bound to a deal of the fake HubSpot."""
        partners = self.env["res.partner"].create([{"name": f"Client {start + i}"} for i in range(count)])
        for i, partner in enumerate(partners):
            self.fake_hubspot.add_deal(str(start + i), None, None, [])
            self.Binding._hub_bind(self.hubspot, "deal", str(start + i), partner)
        return partners

    # ------------------------------------------------------------ the outbox

    def test_changes_before_the_push_go_as_one_push_of_the_latest_values(self):
        first = self.push(self.client, {"invoice_status": "draft", "invoice_number": False})
        self.client.write({"ref": "NW-2"})
        second = self.push(self.client, {"invoice_status": "posted", "invoice_number": "INV/1"})
        self.client.write({"ref": "NW-3"})
        third = self.push(self.client, {"invoice_status": "paid", "invoice_number": "INV/1"})
        self.assertEqual(first, second)
        self.assertEqual(first, third)
        self.assertEqual((first.direction, first.state, first.event_type, first.external_id, first.ordering_key),
                         ("out", "pending", "deal.push", DEAL, f"deal:{DEAL}"))
        self.assertEqual(first.event_type_id, self.env.ref("ps_integration_hub.event_type_hubspot_deal_push"))
        self.assertEqual((first.res_model, first.res_id), ("res.partner", self.client.id))
        self.assertEqual(first.payload["properties"], {"invoice_status": "paid", "invoice_number": "INV/1"})
        self.assertFalse(self.fake_hubspot.requests, "queuing a push calls nobody")

        self.process()
        self.assertEqual(first.state, "done", first.last_error)
        self.assertEqual(self.hubspot_calls(), [("PATCH", f"/crm/v3/objects/deals/{DEAL}")])
        self.assertEqual(self.fake_hubspot.requests[0].body,
                         {"properties": {"invoice_status": "paid", "invoice_number": "INV/1"}})
        self.assertEqual(self.fake_hubspot.deals[DEAL]["properties"]["invoice_status"], "paid")

    def test_the_same_version_of_a_record_is_pushed_once(self):
        event = self.push(self.client, {"invoice_status": "posted"}, versions=["v1"])
        self.assertEqual(self.push(self.client, {"invoice_status": "posted"}, versions=["v1"]), event)
        self.process()
        self.assertEqual(event.state, "done")
        again = self.push(self.client, {"invoice_status": "posted"}, versions=["v1"])
        self.assertEqual(again, event, "that version was pushed: nothing is added")
        self.assertEqual(self.Event.search_count([("direction", "=", "out"), ("res_id", "=", self.client.id)]), 1)
        self.process()
        self.assertEqual(len(self.fake_hubspot.requests), 1)
        newer = self.push(self.client, {"invoice_status": "paid"}, versions=["v2"])
        self.assertNotEqual(newer, event)
        self.assertEqual(newer.state, "pending")

    def test_by_default_a_version_is_the_write_date_and_the_values(self):
        event = self.push(self.client, {"invoice_status": "posted"})
        self.assertEqual(self.push(self.client, {"invoice_status": "posted"}), event)
        self.assertIn(self.client.write_date.isoformat(timespec="microseconds"), event.payload["version"])
        self.assertTrue(event.idempotency_key.startswith(f"push:deal:{DEAL}:res.partner,{self.client.id}:"))

    def test_a_push_a_worker_claimed_is_not_changed_the_change_waits_behind_it(self):
        first = self.push(self.client, {"invoice_status": "posted"})
        token = os.urandom(8).hex()
        self.assertEqual(self.env["ps.hub.engine"]._hub_claim(10, token), first.ids)
        second = self.push(self.client, {"invoice_status": "paid"})
        self.assertNotEqual(second, first)
        self.assertEqual(first.payload["properties"], {"invoice_status": "posted"})
        self.assertTrue(second.held, "it waits behind the push being sent")
        # a push waiting behind another is not changed in place (a worker releases it without
        # skipping locks): the next change queues behind it, and both go in one call
        third = self.push(self.client, {"invoice_status": "reversed"})
        self.assertNotEqual(third, second)
        self.assertTrue(third.held)
        self.env["ps.hub.engine"]._hub_process_claimed(token)
        self.process()
        self.assertEqual((first.state, second.state, third.state), ("done", "done", "done"))
        self.assertEqual([r.body["properties"]["invoice_status"] for r in self.fake_hubspot.requests],
                         ["posted", "reversed"], "the pushes waiting behind the first went as one, the latest")

    def test_a_record_bound_to_nothing_is_not_pushed(self):
        unbound = self.env["res.partner"].create({"name": "Not in the CRM"})
        self.assertFalse(self.push(unbound, {"invoice_status": "posted"}))
        self.assertFalse(self.Event.search([("direction", "=", "out"), ("res_id", "=", unbound.id)]))

    def test_pushes_and_webhooks_of_one_object_are_two_queues(self):
        webhook, _dup = self.enqueue(self.hubspot, [property_change(1, DEAL, "dealstage", "closedwon")])
        push = self.push(self.client, {"invoice_status": "posted"})
        self.assertFalse(push.held, "a push does not wait behind a webhook of its deal")
        with patched_handler(self.env, lambda event: None, ("hubspot", "deal.propertyChange")):
            self.process()
        self.assertEqual((webhook.state, push.state), ("done", "done"))

    # ------------------------------------------------------------ HubSpot calls

    def test_many_pushes_use_the_batch_endpoint_100_at_a_time(self):
        partners = self.deals(150)
        events = self.push(partners, [{"invoice_status": f"paid {i}"} for i in range(150)])
        self.assertEqual(len(events), 150)
        self.process(batch_size=200)
        self.assertEqual(set(events.mapped("state")), {"done"})
        calls = self.fake_hubspot.requests
        self.assertEqual([(r.method, r.path, len(r.body["inputs"])) for r in calls],
                         [("POST", "/crm/v3/objects/deals/batch/update", 100),
                          ("POST", "/crm/v3/objects/deals/batch/update", 50)])
        self.assertEqual(self.fake_hubspot.deals["30000150"]["properties"]["invoice_status"], "paid 149")

    def test_a_batch_s_partial_errors_fail_only_their_events(self):
        partners = self.deals(3)
        gone = self.env["res.partner"].create({"name": "Deleted deal"})
        self.Binding._hub_bind(self.hubspot, "deal", "39999999", gone)  # no such deal at HubSpot
        events = self.push(partners | gone, {"invoice_status": "posted"})
        self.process()
        by_partner = {e.res_id: e for e in events}
        self.assertEqual([by_partner[p.id].state for p in partners], ["done"] * 3)
        failed = by_partner[gone.id]
        self.assertEqual((failed.state, failed.error_class, failed.reason),
                         ("exception", "permanent", "remote_not_found"))
        self.assertIn("39999999", failed.last_error)
        self.assertEqual(len(self.fake_hubspot.requests), 1, "one batch call, no retry of the good ones")

    def test_a_push_to_an_id_that_is_no_plain_id_is_not_sent(self):
        client = self.env["res.partner"].create({"name": "Odd binding"})
        self.Binding._hub_bind(self.hubspot, "deal", "1/../../owners", client)
        event = self.push(client, {"invoice_status": "posted"})
        self.process()
        self.assertEqual((event.state, event.reason), ("exception", "bad_payload"))
        self.assertFalse(self.fake_hubspot.requests)

    def test_a_rate_limited_batch_retries_after_the_window_and_spends_no_other_call(self):
        self.env.ref("ps_integration_hub.event_type_hubspot_deal_push").batch_size = 2
        partners = self.deals(4)
        events = self.push(partners, {"invoice_status": "posted"})
        self.fake_hubspot.rate_limit_next(1)
        before = fields.Datetime.now()
        self.process()
        self.assertEqual(len(self.fake_hubspot.requests), 1, "the refused call, then none for the second batch")
        refused, waiting = events[:2], events[2:]
        self.assertEqual(set(refused.mapped("state")), {"retry"})
        self.assertEqual(set(refused.mapped("reason")), {"rate_limited"})
        self.assertEqual(refused.mapped("attempts"), [0, 0], "a rate limit is the vendor's flow control: uncharged")
        # HubSpot gives no Retry-After: its window (X-HubSpot-RateLimit-Interval-Milliseconds, 10 s)
        self.assertTrue(all((e.next_attempt_at - before).total_seconds() >= 10 for e in refused))
        self.assertEqual(set(waiting.mapped("state")), {"pending"})
        self.assertEqual(waiting.mapped("attempts"), [0, 0], "not charged: they were not tried")
        self.assertTrue(all((e.next_attempt_at - before).total_seconds() >= 10 for e in waiting))

    def test_a_spent_window_holds_the_next_calls_until_it_takes_one(self):
        self.env.ref("ps_integration_hub.event_type_hubspot_deal_push").batch_size = 1
        partners = self.deals(3)
        self.fake_hubspot.limit_rate(2, 4000)
        first = self.push(partners[0], {"invoice_status": "posted"})
        self.process()
        time.sleep(1.5)
        events = first | self.push(partners[1:], {"invoice_status": "posted"})
        self.process()
        self.assertEqual(len(self.fake_hubspot.requests), 2, "no call once none remained")
        self.assertEqual(self.fake_hubspot.refused, 0, "the window was read, not hit")
        self.assertEqual(events.mapped("state"), ["done", "done", "pending"])
        self.assertEqual(events[2].attempts, 0)
        self.env.cr.execute("SELECT EXTRACT(EPOCH FROM next_attempt_at - (clock_timestamp() AT TIME ZONE 'UTC')) "
                            "FROM ps_hub_event WHERE id = %s", [events[2].id])
        wait = float(self.env.cr.fetchone()[0])
        # the window frees when its first call turns 4 s old (2.5 s after the second), not 4 s
        # after the last one
        self.assertLessEqual(wait, 2.5)
        self.assertGreater(wait, 1.0)

    def test_a_refused_value_is_found_by_splitting_the_batch(self):
        partners = self.deals(4)
        bad = partners[2]
        events = self.push(partners, [{"invoice_status": "posted"}] * 4)
        Fake = type(self.fake_hubspot)
        batch_update, patch_object = Fake._batch_update, Fake._patch_object

        def refused(fake):
            return fake._error(400, "Property values were not valid: invoice_status", "VALIDATION_ERROR")

        def batch_refusing_bad(fake, req, object_type):
            if any(i["id"] == "30000003" for i in req.body["inputs"]):
                return refused(fake)
            return batch_update(fake, req, object_type)

        def patch_refusing_bad(fake, req, object_type, object_id):
            return refused(fake) if object_id == "30000003" else patch_object(fake, req, object_type, object_id)
        with patch.object(Fake, "_batch_update", batch_refusing_bad), \
                patch.object(Fake, "_patch_object", patch_refusing_bad):
            self.process()
        by_partner = {e.res_id: e for e in events}
        self.assertEqual(by_partner[bad.id].state, "exception")
        self.assertIn("400", by_partner[bad.id].last_error)
        self.assertEqual(sorted(by_partner[p.id].state for p in partners - bad), ["done"] * 3)

    # ------------------------------------------------------------ Salesforce

    def test_salesforce_push_patches_the_opportunity_with_a_fresh_token_after_a_401(self):
        first = self.push(self.client, {"Invoice_Status__c": "Posted"}, self.salesforce, "Opportunity")
        self.assertEqual(first.event_type, "Opportunity.push")
        self.process()
        self.assertEqual(first.state, "done", first.last_error)
        self.assertEqual(self.fake_salesforce.opportunities[OPPORTUNITY]["Invoice_Status__c"], "Posted")
        self.fake_salesforce.revoke_tokens()  # the session expired
        self.client.write({"ref": "NW-9"})
        second = self.push(self.client, {"Invoice_Status__c": "Paid"}, self.salesforce, "Opportunity")
        self.process()
        self.assertEqual(second.state, "done", second.last_error)
        patches = self.fake_salesforce.calls("PATCH", f"/services/data/v62.0/sobjects/Opportunity/{OPPORTUNITY}")
        self.assertEqual(len(patches), 3, "posted; then paid refused with the old token and made with a new one")
        self.assertEqual(len(self.fake_salesforce.calls("POST", "/services/oauth2/token")), 2)
        self.assertEqual(self.fake_salesforce.opportunities[OPPORTUNITY]["Invoice_Status__c"], "Paid")

    def test_salesforce_push_to_a_deleted_opportunity_is_an_exception(self):
        client = self.env["res.partner"].create({"name": "Contoso"})
        self.Binding._hub_bind(self.salesforce, "Opportunity", "0065e00000GoNeZAAV", client)  # deleted meanwhile
        event = self.push(client, {"Invoice_Status__c": "Posted"}, self.salesforce, "Opportunity")
        self.process()
        self.assertEqual((event.state, event.reason), ("exception", "remote_not_found"))

    # ------------------------------------------------------------ echoes

    def test_the_webhook_of_our_own_push_is_ignored_as_an_echo(self):
        push = self.push(self.client, {"invoice_status": "paid", "amount_paid": 1500.0})
        self.process()
        self.assertEqual(push.state, "done")
        seen = []
        with patched_handler(self.env, seen.append, ("hubspot", "deal.propertyChange")):
            echoes, _dup = self.enqueue(self.hubspot, [
                property_change(11, DEAL, "invoice_status", "paid"),
                property_change(12, DEAL, "amount_paid", "1500"),  # HubSpot's text of our number
            ])
            changes, _dup = self.enqueue(self.hubspot, [
                property_change(13, DEAL, "invoice_status", "refunded"),  # someone changed it in the CRM
                property_change(14, DEAL, "dealstage", "closedlost"),
                property_change(15, "19077999", "invoice_status", "paid"),  # another deal
            ])
            self.process()
        self.assertEqual(set(echoes.mapped("state")), {"ignored"})
        self.assertEqual(set(echoes.mapped("reason")), {"echo"})
        self.assertIn(f"Echo of our push {push.id} (deal {DEAL}: invoice_status", echoes[0].ignore_reason)
        self.assertEqual(set(changes.mapped("state")), {"done"})
        self.assertEqual(sorted(e.id for e in seen), sorted(changes.ids), "only real changes were processed")

    def test_a_change_older_than_our_push_is_not_its_echo(self):
        self.push(self.client, {"invoice_status": "paid"})
        self.process()
        with patched_handler(self.env, lambda event: None, ("hubspot", "deal.propertyChange")):
            old, _dup = self.enqueue(self.hubspot, [
                property_change(21, DEAL, "invoice_status", "paid", int(time.time() * 1000) - 3_600_000)])
            self.process()
        self.assertEqual(old.state, "done", "a change made an hour before the push was someone's")

    def push_then_take_the_deal_back(self, batches):
        """Push sale to the deal, then enqueue, in ``batches`` (processed one after the other),
        HubSpot's webhooks of: its echo, someone's cancelled, and someone's sale again."""
        push = self.push(self.client, {"odoo_order_status": "sale"})
        self.process()
        self.assertEqual(push.state, "done")
        now = int(time.time() * 1000)
        changes = [property_change(31, DEAL, "odoo_order_status", "sale", now),
                   property_change(32, DEAL, "odoo_order_status", "cancelled", now + 1000),
                   property_change(33, DEAL, "odoo_order_status", "sale", now + 2000)]
        events, seen = self.Event, []
        with patched_handler(self.env, seen.append, ("hubspot", "deal.propertyChange")):
            for batch in batches:
                enqueued, _dup = self.enqueue(self.hubspot, [changes[i] for i in batch])
                events |= enqueued
                self.process()
        return events.sorted("id"), seen

    def assert_taken_back(self, events, seen):
        echo, cancelled, back = events
        self.assertEqual((echo.state, echo.reason), ("ignored", "echo"))
        self.assertEqual(cancelled.state, "done")
        self.assertEqual(back.state, "done", "sale again after someone's cancelled is someone's, not our echo")
        self.assertNotEqual(back.reason, "echo")
        self.assertEqual([e.id for e in seen], [cancelled.id, back.id])

    def test_our_value_brought_back_in_the_crm_is_not_an_echo_in_one_batch(self):
        self.assert_taken_back(*self.push_then_take_the_deal_back([(0, 1, 2)]))

    def test_our_value_brought_back_in_the_crm_is_not_an_echo_after_the_real_change_was_processed(self):
        self.assert_taken_back(*self.push_then_take_the_deal_back([(0, 1), (2,)]))

    # ------------------------------------------------------------ server action

    def outbound_mapping(self, model="res.partner", lines=(("ref", "client_reference"),
                                                              ("is_company", "client_is_company"))):
        mapping = self.env["ps.hub.mapping"].create({
            "name": "Client -> deal", "system": "hubspot", "external_object": "deal", "direction": "out",
            "model_id": self.env["ir.model"]._get_id(model),
            "line_ids": [Command.create({"source_path": source, "target_property": prop}) for source, prop in lines],
        })
        return mapping

    def test_push_to_connector_server_action_queues_the_record_s_values(self):
        mapping = self.outbound_mapping()
        action = self.env["ir.actions.server"].create({
            "name": "Push client to deal", "model_id": self.env["ir.model"]._get_id("res.partner"),
            "state": "ps_hub_push", "ps_hub_connector_id": self.hubspot.id, "ps_hub_mapping_id": mapping.id,
        })
        self.assertIn("has no active version", action.warning)
        mapping.action_activate()
        action.invalidate_recordset(["warning"])
        self.assertFalse(action.warning, action.warning)
        self.assertEqual(action.ps_hub_external_model, "deal")
        unbound = self.env["res.partner"].create({"name": "Not in the CRM"})
        action.with_context(active_model="res.partner", active_ids=(self.client | unbound).ids).run()
        event = self.Event.search([("direction", "=", "out"), ("connector_id", "=", self.hubspot.id)])
        self.assertEqual(len(event), 1)
        self.assertEqual(event.payload["properties"], {"client_reference": "NW-1", "client_is_company": False})
        self.assertEqual(event.mapping_version_id, mapping)
        self.assertFalse(self.fake_hubspot.requests)

    def test_push_to_connector_server_action_says_what_it_lacks(self):
        action = self.env["ir.actions.server"].create({
            "name": "Push", "model_id": self.env["ir.model"]._get_id("res.partner"), "state": "ps_hub_push",
            "ps_hub_binding_path": "name",
        })
        self.assertIn("Choose the connector and the outbound mapping", action.warning)
        self.assertIn("name is not a path of relational fields of res.partner", action.warning)
