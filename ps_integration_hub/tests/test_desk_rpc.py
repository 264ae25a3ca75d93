import json
from xmlrpc.client import Fault

from odoo.tests import HttpCase, get_db_name, new_test_user, tagged
from odoo.tools import mute_logger

from .common import HubCaseMixin, patched_handler
from .test_exception_desk import patched_linkable
from .test_worker import hs_event

PASSWORD = "desk-rpc-password-1"  # a test user's


@tagged("post_install", "-at_install")
class TestDeskOverRpc(HubCaseMixin, HttpCase):
    """What a user reaches over XML-RPC, with a password, as the desk's users would script it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.other_company = cls.env["res.company"].create({"name": "Other Co"})
        cls.other_hubspot = cls.hubspot.copy({"name": "Other HubSpot", "company_id": cls.other_company.id})
        cls.finance = new_test_user(cls.env, "rpc_finance", groups="ps_integration_hub.group_hub_finance",
                                    password=PASSWORD, company_id=cls.company.id, company_ids=[cls.company.id])
        cls.manager = new_test_user(cls.env, "rpc_manager", groups="ps_integration_hub.group_hub_manager",
                                    password=PASSWORD, company_id=cls.company.id, company_ids=[cls.company.id])
        cls.their_manager = new_test_user(
            cls.env, "rpc_other_manager", groups="ps_integration_hub.group_hub_manager", password=PASSWORD,
            company_id=cls.other_company.id, company_ids=[cls.other_company.id])
        events, _dup = cls.enqueue(cls.hubspot, [hs_event(1, 1, value="broken"), hs_event(2, 2)])
        cls.exception, cls.done = events.sorted("id")
        cls.partner = cls.env["res.partner"].create({"name": "Bound customer", "company_id": cls.company.id})
        cls.binding = cls.env["ps.hub.binding"]._hub_bind(cls.hubspot, "company", "C1", cls.partner)

    def setUp(self):
        super().setUp()

        def handler(event):
            if event.payload["propertyValue"] != "closedwon":
                raise ValueError("not fixed")
            return self.partner
        with patched_handler(self.env, handler), mute_logger("odoo.addons.ps_integration_hub.models.ps_hub_event"):
            self.process()
        self.assertEqual((self.exception.state, self.done.state), ("exception", "done"))

    def rpc(self, user, model, method, *args, **kwargs):
        result = self.xmlrpc_object.execute_kw(get_db_name(), user.id, PASSWORD, model, method,
                                               list(args), kwargs)
        self.env.invalidate_all()
        return result

    def refused(self, user, model, method, *args, **kwargs):
        with self.assertRaises(Fault) as caught, mute_logger("odoo.http", "odoo.addons.rpc.controllers.xmlrpc"):
            self.rpc(user, model, method, *args, **kwargs)
        return caught.exception.faultString

    def audit(self, event):
        return self.env["ps.hub.audit.log"].search([("event_id", "=", event.id), ("action", "!=", "process")])

    def test_finance_cannot_write_create_or_unlink_events(self):
        event = self.exception
        forged = {"payload": {"objectId": 1, "propertyValue": "closedwon"}, "state": "pending"}
        self.assertIn("exception desk", self.refused(self.finance, "ps.hub.event", "write", [event.id], forged))
        for values in ({"connector_id": self.other_hubspot.id, "company_id": self.other_company.id},
                       {"res_model": "res.partner", "res_id": self.partner.id, "state": "done"}):
            self.refused(self.finance, "ps.hub.event", "write", [event.id], values)
        self.refused(self.finance, "ps.hub.event", "create", [{
            "connector_id": self.hubspot.id, "company_id": self.company.id,
            "event_type": "deal.propertyChange", "idempotency_key": "forged"}])
        self.refused(self.finance, "ps.hub.event", "copy", [event.id], {"idempotency_key": "copy"})
        self.refused(self.finance, "ps.hub.event", "unlink", [event.id])
        self.refused(self.manager, "ps.hub.event", "write", [event.id], forged)
        self.assertEqual((event.state, event.payload["propertyValue"], event.connector_id),
                         ("exception", "broken", self.hubspot))
        self.assertFalse(self.audit(event))

    def test_finance_works_the_desk(self):
        event = self.exception
        fixed = json.dumps(dict(event.payload, propertyValue="closedwon"))
        wizard = self.rpc(self.finance, "ps.hub.event.action.wizard", "create",
                          {"event_ids": [(6, 0, [event.id])], "action": "edit", "payload_text": fixed})
        self.rpc(self.finance, "ps.hub.event.action.wizard", "action_confirm", [wizard])
        self.assertEqual((event.state, event.payload["propertyValue"]), ("pending", "closedwon"))
        log = self.audit(event)
        self.assertEqual((log.action, log.user_id, log.after["payload"]["propertyValue"]),
                         ("edit_payload", self.finance, "closedwon"))
        self.rpc(self.finance, "ps.hub.event", "message_post", [event.id], body="fixed the stage")
        self.assertIn("fixed the stage", event.message_ids[0].body)

    def test_desk_actions_check_the_state(self):
        done = self.done
        wizard = self.rpc(self.finance, "ps.hub.event.action.wizard", "create",
                          {"event_ids": [(6, 0, [done.id])], "action": "edit", "payload_text": "{}"})
        self.assertIn("being processed or already done",
                      self.refused(self.finance, "ps.hub.event.action.wizard", "action_confirm", [wizard]))
        self.refused(self.finance, "ps.hub.event", "action_retry", [done.id])
        self.refused(self.finance, "ps.hub.event", "action_ignore", [done.id], "not needed")
        self.refused(self.finance, "ps.hub.event", "action_link", [done.id], f"res.partner,{self.partner.id}")
        self.assertEqual((done.state, done.payload["propertyValue"]), ("done", "closedwon"))
        self.assertFalse(self.audit(done))

    def test_link_accepts_only_what_the_event_type_produces(self):
        event = self.exception
        wizard = self.rpc(self.finance, "ps.hub.event.action.wizard", "create", {
            "event_ids": [(6, 0, [event.id])], "action": "link", "record_ref": f"res.partner,{self.partner.id}"})
        with patched_linkable(self.env, {"sale.order": "deal"}):
            self.assertIn("cannot be linked",
                          self.refused(self.finance, "ps.hub.event.action.wizard", "action_confirm", [wizard]))
        with patched_linkable(self.env, {"res.partner": "deal"}):
            self.refused(self.finance, "ps.hub.event", "action_link", [event.id], f"res.users,{self.finance.id}")
            self.refused(self.finance, "ps.hub.event", "action_link", [event.id],
                         f"res.partner,{self.partner.id}", "company")
            self.assertEqual(event.state, "exception")
            self.rpc(self.finance, "ps.hub.event", "action_link", [event.id], f"res.partner,{self.partner.id}",
                     "deal")
        self.assertEqual((event.state, event.res_model, event.res_id), ("done", "res.partner", self.partner.id))
        self.assertEqual(self.audit(event).action, "link")

    def test_bindings_change_only_by_a_manager_with_an_audit_row(self):
        binding = self.binding
        other = self.env["res.partner"].create({"name": "Other customer", "company_id": self.company.id})
        self.refused(self.finance, "ps.hub.binding", "write", [binding.id], {"res_id": other.id})
        self.refused(self.finance, "ps.hub.binding", "create", {
            "connector_id": self.hubspot.id, "external_model": "company", "external_id": "C9",
            "res_model": "res.partner", "res_id": other.id})
        self.refused(self.manager, "ps.hub.binding", "write", [binding.id], {"connector_id": self.other_hubspot.id})
        self.assertEqual((binding.res_id, binding.connector_id), (self.partner.id, self.hubspot))
        self.rpc(self.manager, "ps.hub.binding", "write", [binding.id], {"res_id": other.id})
        log = self.env["ps.hub.audit.log"].search([("binding_id", "=", binding.id)])
        self.assertEqual((log.action, log.user_id, log.before["res_id"], log.after["res_id"]),
                         ("binding_write", self.manager, self.partner.id, other.id))
        self.rpc(self.manager, "ps.hub.binding", "unlink", [binding.id])
        log = self.env["ps.hub.audit.log"].search([("action", "=", "binding_unlink"),
                                                   ("connector_id", "=", self.hubspot.id)])
        self.assertEqual((log.external_model, log.external_id, log.before["res_id"]), ("company", "C1", other.id))

    def test_another_company_sees_and_works_nothing_of_ours(self):
        theirs, event = self.their_manager, self.exception
        self.rpc(self.finance, "ps.hub.event", "action_retry", [event.id])  # an audit row of ours
        for model in ("ps.hub.event", "ps.hub.binding", "ps.hub.audit.log"):
            with self.subTest(model=model):
                ours = self.env[model].search([("company_id", "=", self.company.id)])
                self.assertTrue(ours)
                self.assertFalse(self.rpc(theirs, model, "search", [("id", "in", ours.ids)]))
                self.refused(theirs, model, "read", ours.ids[:1], ["id"])
        self.refused(theirs, "ps.hub.event", "action_ignore", [event.id], "not ours")
        self.refused(theirs, "ps.hub.event", "action_retry", [self.done.id])
        self.refused(theirs, "ps.hub.event.action.wizard", "create",
                     {"event_ids": [(6, 0, [event.id])], "action": "ignore", "reason": "not ours"})
        self.refused(theirs, "ps.hub.binding", "write", [self.binding.id], {"external_id": "C2"})
        self.refused(theirs, "ps.hub.binding", "unlink", [self.binding.id])
        self.assertEqual((event.state, self.binding.external_id), ("pending", "C1"))
