from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from .common import HubCase
from .test_worker import hs_event


@tagged("post_install", "-at_install")
class TestSecurity(HubCase):
    def test_finance_cannot_read_secrets(self):
        connector = self.hubspot.with_user(self.user_finance)
        for field in ("signing_secret_enc", "auth_secret_enc", "inbound_token"):
            with self.subTest(field), mute_logger("odoo.models"), self.assertRaises(AccessError):
                connector.read([field])
        self.assertFalse(connector.read(["signing_secret"])[0]["signing_secret"])
        with self.assertRaises(AccessError):
            connector.write({"signing_secret": "hijack"})
        for action in (connector.action_regenerate_token, connector.action_rotate_signing_secret,
                       connector.action_clear_previous_secret):
            with self.subTest(action.__name__), self.assertRaises(AccessError):
                action()
        self.assertEqual(self.hubspot._hub_secret("signing_secret_enc"), "hubspot-client-secret")

    def test_manager_configures_connectors(self):
        connector = self.env["ps.hub.connector"].with_user(self.user_manager).create({
            "name": "Managed", "system": "stripe", "signing_secret": "whsec_x", "auth_type": "none"})
        self.assertTrue(connector.has_signing_secret)
        self.assertIn("/ps_hub/in/", connector.inbound_url)
        old = connector.inbound_url
        connector.action_regenerate_token()
        self.assertNotEqual(connector.inbound_url, old)

    def test_events_are_company_scoped(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        other_connector = self.hubspot.copy({"name": "Other HubSpot", "company_id": other_company.id})
        mine, _dup = self.enqueue(self.hubspot, [hs_event(1)])
        theirs, _dup = self.enqueue(other_connector, [hs_event(2)])
        user = new_test_user(self.env, "hub_finance_main", groups="ps_integration_hub.group_hub_finance",
                             company_id=self.company.id, company_ids=[self.company.id])
        visible = self.env["ps.hub.event"].with_user(user).search([("id", "in", (mine | theirs).ids)])
        self.assertEqual(visible, mine)
        with self.assertRaises(AccessError):
            theirs.with_user(user).read(["state"])
        self.assertNotIn(other_connector, self.env["ps.hub.connector"].with_user(user).search([]))


@tagged("post_install", "-at_install")
class TestOnlyTheDeskChangesEvents(HubCase):
    """The exception desk is the only door: events and bindings do not change by a generic
    create/write/unlink, which RPC reaches with the caller's access rights."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_company = cls.env["res.company"].create({"name": "Other Co"})
        cls.other_hubspot = cls.hubspot.copy({"name": "Other HubSpot", "company_id": cls.other_company.id})

    def exception_event(self, event_id=1):
        events, _dup = self.enqueue(self.hubspot, b'[{"eventId": %d, "subscriptionType": ' % event_id)
        self.assertEqual(events.state, "exception")
        return events

    def audit(self, **domain):
        return self.env["ps.hub.audit.log"].search([(k, "=", v) for k, v in domain.items()])

    def test_events_do_not_change_by_write_create_or_unlink(self):
        event = self.exception_event()
        for user in (self.user_finance, self.user_manager):
            mine = event.with_user(user)
            for values in ({"payload": {"forged": True}, "state": "pending"},
                           {"connector_id": self.other_hubspot.id},
                           {"res_model": "res.partner", "res_id": 1}):
                with self.subTest(user=user.login, values=values), self.assertRaises(AccessError):
                    mine.write(values)
            with self.subTest(user=user.login, op="create"), self.assertRaises(AccessError):
                self.env["ps.hub.event"].with_user(user).create({
                    "connector_id": self.hubspot.id, "company_id": self.company.id,
                    "event_type": "deal.propertyChange", "idempotency_key": "forged"})
            with self.subTest(user=user.login, op="copy"), self.assertRaises(AccessError):
                mine.copy({"idempotency_key": "copied"})
            with self.subTest(user=user.login, op="unlink"), self.assertRaises(AccessError):
                mine.unlink()
        event.invalidate_recordset()
        self.assertEqual((event.state, event.payload, event.connector_id), ("exception", False, self.hubspot))
        self.assertFalse(self.audit(event_id=event.id))
        event.sudo().write({"ctx_reference": "engine"})  # server code in sudo mode: the engine
        self.assertEqual(event.ctx_reference, "engine")

    def test_finance_keeps_the_chatter_of_events(self):
        event = self.exception_event()
        colleague = new_test_user(self.env, "hub_finance_colleague", groups="ps_integration_hub.group_hub_finance")
        desk = event.with_user(self.user_finance)
        desk.message_post(body="Asked the sales team about this deal")
        desk.message_subscribe(partner_ids=self.user_finance.partner_id.ids)
        activity = desk.activity_schedule("mail.mail_activity_data_todo", user_id=colleague.id,
                                          summary="Check the SKU")
        self.assertIn(colleague.partner_id, event.message_partner_ids, "the assignee follows the event")
        activity.with_user(colleague).action_feedback(feedback="SKU created")
        desk.message_unsubscribe(partner_ids=colleague.partner_id.ids)
        self.assertEqual(event.message_partner_ids, self.user_finance.partner_id)
        self.assertIn("SKU created", event.message_ids.mapped("body")[0])
        with self.assertRaises(AccessError):
            event.with_user(self.user_hub).message_subscribe(partner_ids=colleague.partner_id.ids)

    def test_bindings_changed_by_hand_are_audited(self):
        engine, old, new = self.env["res.partner"].create([{"name": "Engine"}, {"name": "Old"}, {"name": "New"}])
        Binding = self.env["ps.hub.binding"]
        Binding._hub_bind(self.hubspot, "company", "C0", engine)  # the engine: no audit row
        self.assertFalse(self.audit(connector_id=self.hubspot.id))
        binding = Binding.with_user(self.user_manager).create({
            "connector_id": self.hubspot.id, "external_model": "company", "external_id": "C1",
            "res_model": "res.partner", "res_id": old.id})
        binding.write({"res_id": new.id})
        binding.unlink()
        created, changed, deleted = (self.audit(action=action, connector_id=self.hubspot.id)
                                     for action in ("binding_create", "binding_write", "binding_unlink"))
        self.assertEqual((created.after["res_id"], created.before), (old.id, False))
        self.assertEqual((changed.before["res_id"], changed.after["res_id"]), (old.id, new.id))
        self.assertEqual((deleted.before["res_id"], deleted.after), (new.id, False))
        for log in created | changed | deleted:
            self.assertEqual((log.user_id, log.connector_id, log.company_id, log.external_model, log.external_id),
                             (self.user_manager, self.hubspot, self.company, "company", "C1"))
        self.assertFalse(deleted.binding_id, "the binding is gone; the row tells what it was")
        self.assertEqual(changed.binding_id, Binding.browse(), "set null with it")

    def test_finance_cannot_change_bindings(self):
        partner = self.env["res.partner"].create({"name": "Bound"})
        binding = self.env["ps.hub.binding"]._hub_bind(self.hubspot, "company", "C1", partner)
        with self.assertRaises(AccessError):
            binding.with_user(self.user_finance).write({"res_id": self.env.user.partner_id.id})
        with self.assertRaises(AccessError):
            binding.with_user(self.user_finance).unlink()
        self.assertEqual(binding.res_id, partner.id)

    def test_bindings_by_hand_stay_in_their_company(self):
        theirs = self.env["res.partner"].create({"name": "Their customer", "company_id": self.other_company.id})
        mine = self.env["res.partner"].create({"name": "My customer", "company_id": self.company.id})
        manager_both = new_test_user(self.env, "hub_manager_both", groups="ps_integration_hub.group_hub_manager",
                                     company_id=self.company.id,
                                     company_ids=[self.company.id, self.other_company.id])
        manager_main = new_test_user(self.env, "hub_manager_main", groups="ps_integration_hub.group_hub_manager",
                                     company_id=self.company.id, company_ids=[self.company.id])
        binding = self.env["ps.hub.binding"]._hub_bind(self.hubspot, "company", "C1", mine)
        with self.assertRaisesRegex(ValidationError, "belongs to Other Co"):
            binding.with_user(manager_both).write({"res_id": theirs.id})
        with self.assertRaises(AccessError):  # a record it cannot read
            binding.with_user(manager_main).write({"res_id": theirs.id})
        with self.assertRaises(AccessError):  # a connector of a company it is not in
            binding.with_user(manager_main).write({"connector_id": self.other_hubspot.id})
        self.assertEqual((binding.connector_id, binding.res_id), (self.hubspot, mine.id))

    def test_another_company_sees_and_works_nothing_of_ours(self):
        event = self.exception_event()
        event.with_user(self.user_finance).action_retry()
        binding = self.env["ps.hub.binding"]._hub_bind(
            self.hubspot, "company", "C1", self.env["res.partner"].create({"name": "Bound"}))
        binding.with_user(self.user_manager).write({"external_id": "C2"})  # an audit row of ours
        theirs = new_test_user(self.env, "hub_manager_other", groups="ps_integration_hub.group_hub_manager",
                               company_id=self.other_company.id, company_ids=[self.other_company.id])
        for model, record in (("ps.hub.event", event), ("ps.hub.binding", binding),
                              ("ps.hub.audit.log", self.audit(connector_id=self.hubspot.id))):
            with self.subTest(model=model):
                self.assertTrue(record)
                self.assertFalse(self.env[model].with_user(theirs).search([("id", "in", record.ids)]))
                with self.assertRaises(AccessError):
                    record.with_user(theirs).read(["id"])
        theirs_event = event.with_user(theirs)
        for action in (theirs_event.action_retry, lambda: theirs_event.action_ignore("not ours"),
                       lambda: theirs_event.action_edit_payload_and_retry("[]"),
                       lambda: theirs_event.action_link(theirs.partner_id)):
            with self.assertRaises(AccessError):
                action()
        with self.assertRaises(AccessError):
            binding.with_user(theirs).write({"res_id": theirs.partner_id.id})
        with self.assertRaises(AccessError):
            binding.with_user(theirs).unlink()
        self.assertEqual(event.state, "pending")
