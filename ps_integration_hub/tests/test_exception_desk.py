import json

from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, tagged

from ..services.errors import BusinessError
from .common import HubCase, patched_handler
from .test_worker import hs_event


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
