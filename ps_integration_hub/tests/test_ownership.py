"""Field ownership: inbound updates keep out of fields others own; users' changes of fields an
external system owns are refused; the integration's own writes pass."""

import psycopg2

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.fields import Command
from odoo.tests import BaseCase, TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..models.base import INTEGRATION, INTEGRATION_KEY
from ..services import ownership
from .common import HubCaseMixin, patched_handler


@tagged("post_install", "-at_install")
class TestOwnershipServices(BaseCase):
    def test_split_inbound(self):
        owners = {"vat": "odoo", "phone": "hubspot", "department_id": "bamboohr"}
        values = {"vat": "GB1", "phone": "+44", "department_id": 3, "city": "London"}
        self.assertEqual(ownership.split_inbound(owners, "hubspot", values),
                         ({"phone": "+44", "city": "London"}, ["vat", "department_id"]))
        self.assertEqual(ownership.split_inbound(owners, "bamboohr", values),
                         ({"department_id": 3, "city": "London"}, ["vat", "phone"]))
        self.assertEqual(ownership.split_inbound({}, "stripe", values), (values, []))

    def test_x2many_ids_after(self):
        after = ownership.x2many_ids_after
        self.assertEqual(after({1, 2}, [Command.set([2, 1])]), {1, 2})
        self.assertEqual(after({1, 2}, [Command.link(3)]), {1, 2, 3})
        self.assertEqual(after({1, 2}, [Command.unlink(1), Command.link(1)]), {1, 2})
        self.assertEqual(after({1, 2}, [Command.clear()]), set())
        self.assertEqual(after({1}, [2, 3]), {1, 2, 3})
        self.assertEqual(after({1}, False), set())
        self.assertIsNone(after({1}, [Command.create({"name": "x"})]), "a new linked record is a change")
        self.assertIsNone(after({1}, [Command.update(1, {"name": "x"})]))


class OwnershipCase(HubCaseMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.Rule = cls.env["ps.hub.ownership.rule"]
        # each test declares the rules it needs: the installed modules' rules of contacts
        # (quote to cash's) would change what these tests see
        cls.Rule.with_context(active_test=False).search([("model", "=", "res.partner")]).unlink()
        # a user who may edit contacts, and nothing of the hub
        cls.user_sales = new_test_user(cls.env, "own_contacts", groups="base.group_user,base.group_partner_manager")
        cls.partner = cls.env["res.partner"].create({
            "name": "Northwind Legal", "is_company": True, "phone": "+44 20 0000 0000", "city": "London"})
        cls.env["ps.hub.binding"]._hub_bind(cls.hubspot, "company", "5500071", cls.partner)

    @classmethod
    def rule(cls, model, field, owner, **values):
        return cls.env["ps.hub.ownership.rule"].create(dict(
            values, model_id=cls.env["ir.model"]._get_id(model),
            field_id=cls.env["ir.model.fields"]._get(model, field).id, owner=owner))

    def as_user(self, record, user=None):
        return record.with_user(user or self.user_sales)


@tagged("post_install", "-at_install")
class TestUserWrites(OwnershipCase):
    def test_change_of_a_field_owned_elsewhere_is_refused_with_its_owner(self):
        self.rule("res.partner", "phone", "hubspot")
        with self.assertRaises(UserError) as caught:
            self.as_user(self.partner).write({"phone": "+44 20 7946 0000"})
        message = str(caught.exception)
        self.assertIn("Phone of Contact Northwind Legal is owned by HubSpot", message)
        self.assertIn("change it in HubSpot", message)
        self.assertEqual(self.partner.phone, "+44 20 0000 0000")
        # the other fields of the record stay the user's
        self.as_user(self.partner).write({"email": "office@northwind.example"})
        self.assertEqual(self.partner.email, "office@northwind.example")

    def test_several_fields_are_named_together(self):
        self.rule("res.partner", "phone", "hubspot")
        self.rule("res.partner", "city", "hubspot")
        with self.assertRaisesRegex(UserError, "Phone and City of Contact Northwind Legal are owned by HubSpot"):
            self.as_user(self.partner).write({"phone": "+1", "city": "Leeds", "email": "a@b.example"})

    def test_the_integration_writes_what_its_system_owns(self):
        self.rule("res.partner", "phone", "hubspot")
        self.as_user(self.partner)._hub_as_integration().write({"phone": "+44 20 7946 0000"})
        self.assertEqual(self.partner.phone, "+44 20 7946 0000")
        self.assertIs(self.partner._hub_as_integration().env.context[INTEGRATION_KEY], INTEGRATION)

    def test_a_client_cannot_claim_to_be_the_integration(self):
        """A context key from an RPC call is no marker of the integration: only the server's object is."""
        self.rule("res.partner", "phone", "hubspot")
        for value in (True, 1, "1"):
            with self.subTest(value=value), self.assertRaises(UserError):
                self.as_user(self.partner).with_context(ps_hub_integration=value).write({"phone": "+1"})

    def test_a_value_that_does_not_change_passes(self):
        """Forms and imports send values back unchanged."""
        self.rule("res.partner", "phone", "hubspot")
        self.rule("res.partner", "parent_id", "hubspot")
        self.as_user(self.partner).write({"phone": "+44 20 0000 0000", "parent_id": False, "name": "Northwind"})
        self.assertEqual(self.partner.name, "Northwind")
        self.rule("res.partner", "city", "hubspot")
        # several records: refused when any of them would change, naming that one
        other = self.env["res.partner"].create({"name": "Contoso", "is_company": True, "city": "Paris"})
        self.env["ps.hub.binding"]._hub_bind(self.hubspot, "company", "5500072", other)
        with self.assertRaisesRegex(UserError, "City of Contact Contoso is owned by HubSpot"):
            self.as_user(self.partner | other).write({"city": "London"})

    def test_tags_compared_as_sets(self):
        tags = self.env["res.partner.category"].create([{"name": "Gold"}, {"name": "Silver"}])
        self.partner.category_id = tags
        self.rule("res.partner", "category_id", "hubspot")
        self.as_user(self.partner).write({"category_id": [Command.set(tags[::-1].ids)]})
        with self.assertRaises(UserError):
            self.as_user(self.partner).write({"category_id": [Command.unlink(tags[0].id)]})
        with self.assertRaises(UserError):
            self.as_user(self.partner).write({"category_id": [Command.create({"name": "Bronze"})]})

    def test_records_not_synchronised_with_the_owner_stay_editable(self):
        self.rule("res.partner", "phone", "hubspot", external_model="company")
        local = self.env["res.partner"].create({"name": "Local Supplier", "phone": "+33 1"})
        self.as_user(local).write({"phone": "+33 2"})
        self.assertEqual(local.phone, "+33 2")
        # bound as another type of HubSpot object, or to another system: not this rule's
        self.env["ps.hub.binding"]._hub_bind(self.hubspot, "contact", "7300912", local)
        self.env["ps.hub.binding"]._hub_bind(self.bamboohr, "company", "1", local)
        self.as_user(local).write({"phone": "+33 3"})
        # an archived connector synchronises nothing: its records are Odoo's to edit
        self.hubspot.active = False
        self.as_user(self.partner).write({"phone": "+44 1"})
        self.assertEqual(self.partner.phone, "+44 1")

    def test_rule_for_all_records(self):
        self.rule("res.partner", "phone", "hubspot", scope="all")
        local = self.env["res.partner"].create({"name": "Local Supplier", "phone": "+33 1"})
        with self.assertRaisesRegex(UserError, "Phone of Contact Local Supplier is owned by HubSpot"):
            self.as_user(local).write({"phone": "+33 2"})
        # a new record takes no value in it other than the default, empty or not
        Partner = self.as_user(self.env["res.partner"])
        Partner.create([{"name": "No phone"}, {"name": "Empty phone", "phone": False}])
        with self.assertRaisesRegex(UserError, "Phone of Contact is owned by HubSpot"):
            Partner.create({"name": "With phone", "phone": "+33 9"})
        self.assertEqual(Partner.with_context(default_phone="+33 9").create({"name": "Default"}).phone, "+33 9")
        self.as_user(Partner.with_context(default_phone="+33 9")).create({"name": "Same", "phone": "+33 9"})

    def test_odoo_owned_fields_are_the_users(self):
        self.rule("res.partner", "phone", "odoo", scope="all")
        self.as_user(self.partner).write({"phone": "+44 1"})
        self.assertEqual(self.partner.phone, "+44 1")

    def test_superuser_and_archived_rules_are_not_checked(self):
        rule = self.rule("res.partner", "phone", "hubspot", scope="all")
        self.partner.write({"phone": "+44 1"})  # the superuser environment: install, upgrade, system jobs
        self.as_user(self.partner).sudo().write({"phone": "+44 2"})
        rule.active = False
        self.as_user(self.partner).write({"phone": "+44 3"})
        rule.active = True
        with self.assertRaises(UserError):
            self.as_user(self.partner).write({"phone": "+44 4"})
        rule.owner = "odoo"
        self.as_user(self.partner).write({"phone": "+44 5"})
        rule.unlink()
        self.as_user(self.partner).write({"phone": "+44 6"})
        self.assertEqual(self.partner.phone, "+44 6")

    def test_handlers_write_as_the_integration(self):
        """The engine runs handlers with the integration's mark: whoever the worker's user is."""
        self.rule("res.partner", "phone", "hubspot")
        seen = []

        def handler(event):
            seen.append(event.env.context.get(INTEGRATION_KEY))
            self.as_user(self.partner.with_env(event.env)).write({"phone": "+44 20 7946 0000"})

        with patched_handler(self.env, handler, key=("hubspot", "company.propertyChange")):
            events, _dup = self.enqueue(self.hubspot, [
                {"eventId": 1, "subscriptionType": "company.propertyChange", "objectId": 5500071,
                 "propertyName": "phone", "propertyValue": "+44 20 7946 0000", "occurredAt": 1763632800000}])
            self.process()
        self.assertEqual(events.state, "done", events.last_error)
        self.assertEqual(seen, [INTEGRATION])
        self.assertEqual(self.partner.phone, "+44 20 7946 0000")


@tagged("post_install", "-at_install")
class TestInboundFilter(OwnershipCase):
    def test_inbound_update_keeps_out_of_fields_others_own(self):
        self.rule("res.partner", "vat", "odoo")
        self.rule("res.partner", "phone", "hubspot")
        self.rule("res.partner", "email", "salesforce")
        values = {"vat": "GB1", "phone": "+44", "email": "a@b.example", "city": "Leeds"}
        self.assertEqual(self.Rule._hub_filter_inbound("res.partner", "hubspot", values),
                         ({"phone": "+44", "city": "Leeds"}, ["vat", "email"]))
        self.assertEqual(self.Rule._hub_filter_inbound("res.partner", "salesforce", values),
                         ({"email": "a@b.example", "city": "Leeds"}, ["vat", "phone"]))
        self.assertEqual(self.Rule._hub_filter_inbound("res.company", "hubspot", values), (values, []))
        message = self.Rule._hub_dropped_message("res.partner", "hubspot", ["vat", "email"])
        self.assertIn("Tax ID (owned by Odoo), Email (owned by Salesforce)", message)

    def test_an_archived_rule_filters_nothing(self):
        rule = self.rule("res.partner", "vat", "odoo")
        rule.active = False
        self.assertEqual(self.Rule._hub_filter_inbound("res.partner", "hubspot", {"vat": "GB1"}), ({"vat": "GB1"}, []))


@tagged("post_install", "-at_install")
class TestRules(OwnershipCase):
    def test_one_rule_per_field(self):
        self.rule("res.partner", "vat", "odoo")
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError), \
                self.env.cr.savepoint():
            self.rule("res.partner", "vat", "hubspot")

    def test_field_of_the_model_only(self):
        with self.assertRaisesRegex(ValidationError, "is not a field of"):
            self.Rule.create({"model_id": self.env["ir.model"]._get_id("res.partner"), "owner": "odoo",
                              "field_id": self.env["ir.model.fields"]._get("res.company", "vat").id})
        with self.assertRaisesRegex(ValidationError, "written by Odoo itself"):
            self.rule("res.partner", "write_date", "hubspot")

    def test_owners_are_odoo_and_the_connector_systems(self):
        owners = dict(self.Rule._selection_owner())
        systems = dict(self.env["ps.hub.connector"]._fields["system"]._description_selection(self.env))
        self.assertEqual(owners.pop("odoo"), "Odoo")
        self.assertEqual(owners, systems)

    def test_managers_edit_the_rules_users_read_them(self):
        rule = self.rule("res.partner", "vat", "odoo")
        self.assertEqual(rule.with_user(self.user_hub).owner, "odoo")
        with self.assertRaises(AccessError):
            rule.with_user(self.user_finance).write({"owner": "hubspot"})
        with self.assertRaises(AccessError):
            self.Rule.with_user(self.user_sales).search([])
        rule.with_user(self.user_manager).write({"owner": "hubspot"})
        self.assertEqual(self.Rule._hub_owned_fields()["res.partner"]["vat"].owner, "hubspot", "cache cleared")
        self.Rule.with_user(self.user_manager).create({
            "model_id": self.env["ir.model"]._get_id("res.partner"), "owner": "stripe",
            "field_id": self.env["ir.model.fields"]._get("res.partner", "email").id})
