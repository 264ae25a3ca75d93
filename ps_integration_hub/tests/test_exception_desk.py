import json
from contextlib import contextmanager
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, new_test_user, tagged
from odoo.tools import SQL

from ..services.errors import BusinessError
from .common import HubCase, patched_handler
from .test_worker import hs_event


@contextmanager
def patched_linkable(env, linkable, key=("hubspot", "deal.propertyChange")):
    """Declare ``linkable`` ({model: binding type}) as what events of ``key`` produce, as the
    module of a real handler does (the tests' handlers make partners of deal events)."""
    Model = type(env["ps.hub.event"])
    declared = Model._hub_linkable_models

    def linkable_models(event):
        if (event.system, event.event_type) == key:
            return dict(linkable)
        return declared(event)
    with patch.object(Model, "_hub_linkable_models", linkable_models):
        yield


@tagged("post_install", "-at_install")
class TestExceptionDesk(HubCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Event = cls.env["ps.hub.event"]

    def fail_then_succeed(self):
        def handler(event):
            if (event.payload or {}).get("propertyValue") != "closedwon":
                raise BusinessError("not fixed yet", reason="missing_product")
            return self.env["res.partner"].create({"name": f"deal {event.external_id}"})
        return patched_handler(self.env, handler)

    def make_exception(self, event_id=1, value="broken"):
        events, _dup = self.enqueue(self.hubspot, [hs_event(event_id, event_id, value=value)])
        with self.fail_then_succeed():
            self.process()
        self.assertEqual(events.state, "exception")
        return events

    def audit(self, event, action):
        return self.env["ps.hub.audit.log"].search([("event_id", "=", event.id), ("action", "=", action)])

    def test_edit_payload_and_retry(self):
        event = self.make_exception()
        fixed = dict(event.payload, propertyValue="closedwon")
        wizard = Form(self.env["ps.hub.event.action.wizard"].with_user(self.user_finance).with_context(
            active_ids=event.ids, default_action="edit"))
        self.assertIn('"broken"', wizard.payload_text)
        wizard.payload_text = json.dumps(fixed)
        wizard.save().action_confirm()
        self.assertEqual((event.state, event.attempts), ("pending", 0))
        with self.fail_then_succeed():
            self.process()
        self.assertEqual(event.state, "done")
        log = self.audit(event, "edit_payload")
        self.assertEqual(log.user_id, self.user_finance)
        self.assertEqual(log.before["payload"]["propertyValue"], "broken")
        self.assertEqual(log.after["payload"]["propertyValue"], "closedwon")

    def test_edit_rejects_invalid_json(self):
        event = self.make_exception()
        with self.assertRaisesRegex(UserError, "not valid JSON"):
            event.with_user(self.user_finance).action_edit_payload_and_retry("{nope")
        self.assertEqual(event.state, "exception")

    def test_fix_malformed_raw_payload(self):
        events, _dup = self.enqueue(self.hubspot, b'[{"eventId": 9, "subscriptionType": "deal.propertyChange",')
        events.with_user(self.user_finance).action_edit_payload_and_retry(json.dumps([hs_event(9, 9)]))
        self.assertEqual((events.event_type, events.external_id, events.state),
                         ("deal.propertyChange", "9", "pending"))

    def test_bulk_retry(self):
        first, second = self.make_exception(1), self.make_exception(2)
        both = (first | second).with_user(self.user_finance)
        both.action_retry()
        self.assertEqual(both.mapped("state"), ["pending", "pending"])
        self.assertEqual(len(self.audit(first, "retry")) + len(self.audit(second, "retry")), 2)

    def test_ignore_requires_reason(self):
        event = self.make_exception().with_user(self.user_finance)
        with self.assertRaisesRegex(UserError, "why"):
            event.action_ignore("  ")
        event.action_ignore("Duplicate deal, handled by hand")
        self.assertEqual((event.state, event.ignore_reason), ("ignored", "Duplicate deal, handled by hand"))
        self.assertEqual(self.audit(event, "ignore").note, "Duplicate deal, handled by hand")

    def test_link_to_existing_record_binds_it(self):
        event = self.make_exception(5)
        partner = self.env["res.partner"].create({"name": "Existing customer"})
        with patched_linkable(self.env, {"res.partner": "deal"}):
            wizard = Form(self.env["ps.hub.event.action.wizard"].with_user(self.user_finance).with_context(
                active_ids=event.ids, default_action="link"))
            wizard.record_ref = f"res.partner,{partner.id}"
            self.assertEqual(wizard.binding_model, "deal")
            wizard.save().action_confirm()
        self.assertEqual((event.state, event._hub_record()), ("done", partner))
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "5"), partner)
        self.assertEqual(self.audit(event, "link").after["res_id"], partner.id)

    def test_plain_user_cannot_work_exceptions(self):
        event = self.make_exception()
        with self.assertRaises(AccessError):
            event.with_user(self.user_hub).action_retry()
        with self.assertRaises(AccessError):
            event.with_user(self.user_hub).action_ignore("no")

    def test_audit_log_is_append_only(self):
        event = self.make_exception()
        event.with_user(self.user_finance).action_retry()
        log = self.audit(event, "retry")
        for user in (self.env.user, self.user_manager):
            with self.subTest(user=user.login):
                with self.assertRaises(UserError):
                    log.with_user(user).write({"note": "rewritten"})
                with self.assertRaises(UserError):
                    log.with_user(user).unlink()
        self.assertTrue(log.exists())

    def test_retry_refuses_done_events(self):
        events, _dup = self.enqueue(self.hubspot, [hs_event(7, 7)])
        with self.fail_then_succeed():
            self.process()
        self.assertEqual(events.state, "done")
        with self.assertRaises(UserError):
            events.with_user(self.user_finance).action_retry()

    # ------------------------------------------------ each action checks the state

    def make_done(self, event_id=7):
        events, _dup = self.enqueue(self.hubspot, [hs_event(event_id, event_id)])
        with self.fail_then_succeed():
            self.process()
        self.assertEqual(events.state, "done")
        return events

    def make_processing(self, event_id=8):
        """An event a worker has claimed (the state its claim sets)."""
        events, _dup = self.enqueue(self.hubspot, [hs_event(event_id, event_id, value="broken")])
        self.env.cr.execute(SQL("UPDATE ps_hub_event SET state = 'processing', claim_token = 'w', "
                                "attempts = 1 WHERE id = %s", events.id))
        events.invalidate_recordset()
        return events

    def assert_untouched(self, event, state):
        event.invalidate_recordset()
        self.assertEqual(event.state, state)
        self.assertFalse(self.env["ps.hub.audit.log"].search(
            [("event_id", "=", event.id), ("action", "!=", "process")]))

    def test_edit_refuses_done_and_processing_events(self):
        for event in (self.make_done(), self.make_processing()):
            state = event.state
            with self.subTest(state=state):
                payload = json.dumps(dict(event.payload, propertyValue="closedwon"))
                with self.assertRaisesRegex(UserError, "being processed or already done"):
                    event.with_user(self.user_finance).action_edit_payload_and_retry(payload)
                self.assert_untouched(event, state)
                self.assertEqual(event.payload["propertyValue"], "closedwon" if state == "done" else "broken")

    def test_link_refuses_done_and_processing_events(self):
        partner = self.env["res.partner"].create({"name": "Existing customer"})
        with patched_linkable(self.env, {"res.partner": "deal"}):
            for event in (self.make_done(), self.make_processing()):
                state = event.state
                with self.subTest(state=state):
                    with self.assertRaisesRegex(UserError, "being processed or already done"):
                        event.with_user(self.user_finance).action_link(partner, "deal")
                    self.assert_untouched(event, state)
        self.assertFalse(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "7"))

    def test_retry_and_ignore_refuse_processing_and_done_events(self):
        for event in (self.make_done(), self.make_processing()):
            state = event.state
            with self.subTest(state=state):
                with self.assertRaises(UserError):
                    event.with_user(self.user_finance).action_retry()
                with self.assertRaises(UserError):
                    event.with_user(self.user_finance).action_ignore("not needed")
                self.assert_untouched(event, state)

    def test_bulk_actions_leave_events_in_other_states_alone(self):
        exception, done = self.make_exception(1), self.make_done(2)
        (exception | done).with_user(self.user_finance).action_ignore("test deals")
        self.assertEqual((exception.state, done.state), ("ignored", "done"))
        (exception | done).with_user(self.user_finance).action_retry()
        self.assertEqual((exception.state, done.state), ("pending", "done"))

    def test_edit_and_link_apply_to_dead_and_ignored_events(self):
        dead, ignored = self.make_exception(1), self.make_exception(2)
        self.env.cr.execute(SQL("UPDATE ps_hub_event SET state = 'dead' WHERE id = %s", dead.id))
        dead.invalidate_recordset()
        ignored.with_user(self.user_finance).action_ignore("later")
        dead.with_user(self.user_finance).action_edit_payload_and_retry(
            json.dumps(dict(dead.payload, propertyValue="closedwon")))
        self.assertEqual(dead.state, "pending")
        partner = self.env["res.partner"].create({"name": "Existing customer"})
        with patched_linkable(self.env, {"res.partner": "deal"}):
            ignored.with_user(self.user_finance).action_link(partner)
        self.assertEqual((ignored.state, ignored._hub_record()), ("done", partner))

    # ------------------------------------------------ Link: only what the event type produces

    def test_link_accepts_only_the_models_the_event_type_produces(self):
        event = self.make_exception(5)
        user = self.env["res.users"].search([], limit=1)
        partner = self.env["res.partner"].create({"name": "Existing customer"})
        desk = event.with_user(self.user_finance)
        with self.assertRaisesRegex(UserError, "cannot be linked"):
            desk.action_link(partner)  # nothing declared for this event type: nothing linkable
        with patched_linkable(self.env, {"res.partner": "deal"}):
            self.assertTrue(event.hub_linkable)
            with self.assertRaisesRegex(UserError, "cannot be linked to a User"):
                desk.action_link(user)
            with self.assertRaisesRegex(UserError, "bound as deal, not company"):
                desk.action_link(partner, "company")  # would re-point the company binding 5
            self.assert_untouched(event, "exception")
            self.assertFalse(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "company", "5"))
            desk.action_link(f"res.partner,{partner.id}", "deal")  # a reference, as RPC sends it
        self.assertEqual((event.state, event._hub_record()), ("done", partner))

    def test_link_wizard_binds_as_the_event_type_declares(self):
        event = self.make_exception(5)
        partner = self.env["res.partner"].create({"name": "Existing customer"})
        with patched_linkable(self.env, {"res.partner": "company"}):
            wizard = Form(self.env["ps.hub.event.action.wizard"].with_user(self.user_finance).with_context(
                active_ids=event.ids, default_action="link"))
            wizard.record_ref = f"res.partner,{partner.id}"
            self.assertEqual(wizard.binding_model, "company", "not the ordering key's 'deal'")
            wizard.binding_model = "deal"
            with self.assertRaisesRegex(UserError, "bound as company, not deal"):
                wizard.save().action_confirm()

    def test_link_refuses_a_record_of_another_company_or_unreadable(self):
        other = self.env["res.company"].create({"name": "Other Co"})
        event = self.make_exception(5)
        theirs = self.env["res.partner"].create({"name": "Their customer", "company_id": other.id})
        both = new_test_user(self.env, "hub_finance_both", groups="ps_integration_hub.group_hub_finance",
                             company_id=self.company.id, company_ids=[self.company.id, other.id])
        with patched_linkable(self.env, {"res.partner": "deal"}):
            with self.assertRaisesRegex(ValidationError, "belongs to Other Co"):
                event.with_user(both).action_link(theirs, "deal")
            with self.assertRaises(AccessError):  # the main company's finance cannot read it
                event.with_user(self.user_finance).action_link(theirs, "deal")
            self.assert_untouched(event, "exception")
            shared = self.env["res.partner"].create({"name": "Shared customer"})
            event.with_user(both).action_link(shared, "deal")
        log = self.audit(event, "link")
        self.assertEqual((log.binding_id.res_id, log.after["binding"]["external_id"]), (shared.id, "5"))

    def test_link_that_re_points_a_binding_records_it(self):
        event = self.make_exception(5)
        old, new = self.env["res.partner"].create([{"name": "Old"}, {"name": "New"}])
        self.env["ps.hub.binding"]._hub_bind(self.hubspot, "deal", "5", old)
        with patched_linkable(self.env, {"res.partner": "deal"}):
            event.with_user(self.user_finance).action_link(new, "deal")
        log = self.audit(event, "link")
        self.assertEqual(log.before["binding"]["res_id"], old.id)
        self.assertEqual(log.after["binding"]["res_id"], new.id)
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "5"), new)

    def test_plain_user_cannot_edit_or_link(self):
        event = self.make_exception()
        partner = self.env["res.partner"].create({"name": "Existing customer"})
        with self.assertRaises(AccessError):
            event.with_user(self.user_hub).action_edit_payload_and_retry("{}")
        with patched_linkable(self.env, {"res.partner": "deal"}), self.assertRaises(AccessError):
            event.with_user(self.user_hub).action_link(partner)
        self.assert_untouched(event, "exception")

    def test_audit_keeps_what_the_event_was(self):
        event = self.make_exception(3)
        event.with_user(self.user_finance).action_retry()
        log = self.audit(event, "retry") | self.audit(event, "process")
        self.assertEqual(set(log.mapped("event_type")), {"deal.propertyChange"})
        self.assertEqual(set(log.mapped("external_id")), {"3"})
        self.assertEqual(log.connector_id, self.hubspot)
