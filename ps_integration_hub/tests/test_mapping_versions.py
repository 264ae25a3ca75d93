from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, tagged

from .common import HubCase


@tagged("post_install", "-at_install")
class TestMappingModels(HubCase):
    """Mappings and value maps as records: versions, value maps, outbound values, access."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # quote-to-cash, where installed, makes HubSpot the owner of customer names: these tests
        # are about mappings (test_ownership.py covers the rules applied to what a mapping gives)
        cls.env["ps.hub.ownership.rule"].search([("model_id.model", "=", "res.partner")]).active = False
        Field = cls.env["ir.model.fields"]
        cls.countries = cls.env["ps.hub.value.map"].create({
            "name": "Test countries", "code": "test_country", "kind": "record",
            "model_id": cls.env["ir.model"]._get_id("res.country"),
            "entry_ids": [(0, 0, {"external_value": "Deutschland", "res_id": cls.env.ref("base.de").id})],
        })
        cls.inbound = cls.env["ps.hub.mapping"].with_user(cls.user_manager).create({
            "name": "Test customer", "system": "stripe", "external_object": "customer",
            "model_id": cls.env["ir.model"]._get_id("res.partner"),
            "line_ids": [
                (0, 0, {"source_path": "data.object.name", "field_id": Field._get("res.partner", "name").id,
                        "required": True, "transform": "strip"}),
                (0, 0, {"source_path": "/data/object/address/country", "transform": "lookup",
                        "value_map_id": cls.countries.id, "field_id": Field._get("res.partner", "country_id").id}),
            ],
        })

    def test_new_mapping_is_version_one_draft_and_applies(self):
        self.assertEqual((self.inbound.version, self.inbound.state), (1, "draft"))
        payload = {"data": {"object": {"name": " Acme ", "address": {"country": "deutschland"}}}}
        result = self.inbound._hub_apply(payload)
        self.assertEqual(result.values, {"name": "Acme", "country_id": self.env.ref("base.de").id})
        result = self.inbound._hub_apply({"data": {"object": {"address": {"country": "Atlantis"}}}})
        self.assertEqual(result.missing, ["name"])
        self.assertIn("test_country has no entry for 'Atlantis'", result.errors["country_id"])

    def test_value_map_changes_reach_the_active_version(self):
        self.inbound.action_activate()
        self.assertEqual(self.env["ps.hub.mapping"]._hub_active(self.stripe, "customer"), self.inbound)
        payload = {"data": {"object": {"name": "Acme", "address": {"country": "Österreich"}}}}
        self.assertIn("country_id", self.inbound._hub_apply(payload).errors)
        self.countries.with_user(self.user_manager).entry_ids = [
            (0, 0, {"external_value": "Österreich", "res_id": self.env.ref("base.at").id})]
        self.assertEqual(self.inbound._hub_apply(payload).values["country_id"], self.env.ref("base.at").id)
        with self.assertRaises(ValidationError):
            self.countries.entry_ids = [(0, 0, {"external_value": "Nowhere"})]  # maps to nothing

    def test_external_values_of_a_value_follow_the_map_at_once(self):
        """What closed-won detection reads (the stages valued won): cached, and every change of
        the map or of an entry counts at once."""
        ValueMap = self.env["ps.hub.value.map"]
        stages = ValueMap.with_user(self.user_manager).create({
            "name": "Test stages", "code": "test_stage", "kind": "value",
            "entry_ids": [(0, 0, {"external_value": "closedwon", "value": "won"}),
                          (0, 0, {"external_value": "closedlost", "value": "lost"})],
        })
        self.assertEqual(ValueMap._hub_external_values("test_stage", "won"), {"closedwon"})
        self.assertEqual(ValueMap._hub_external_values("test_stage", " Won"), {"closedwon"}, "any case")
        self.assertEqual(ValueMap._hub_external_values("test_stage", "open"), frozenset())
        self.assertIsNone(ValueMap._hub_external_values("no_such_map", "won"))
        stages.with_user(self.user_manager).entry_ids = [(0, 0, {"external_value": "98765432", "value": "won"})]
        self.assertEqual(ValueMap._hub_external_values("test_stage", "won"), {"closedwon", "98765432"})
        lost = stages.entry_ids.filtered(lambda e: e.external_value == "closedlost")
        lost.with_user(self.user_manager).value = "WON"
        self.assertEqual(ValueMap._hub_external_values("test_stage", "won"), {"closedwon", "closedlost", "98765432"})
        lost.with_user(self.user_manager).unlink()
        self.assertEqual(ValueMap._hub_external_values("test_stage", "won"), {"closedwon", "98765432"})
        stages.with_user(self.user_manager).action_archive()
        self.assertIsNone(ValueMap._hub_external_values("test_stage", "won"), "an archived map is no map")
        stages.with_user(self.user_manager).action_unarchive()
        self.assertEqual(ValueMap._hub_external_values("test_stage", "won"), {"closedwon", "98765432"})

    def test_connector_mapping_comes_before_the_systems(self):
        self.inbound.action_activate()
        own = self.inbound.copy({"connector_id": self.stripe.id, "version": 0, "name": "Own"})
        self.assertEqual(own.version, 1, "versions count per mapping: the connector's is another one")
        own.action_activate()
        self.assertEqual(self.env["ps.hub.mapping"]._hub_active(self.stripe, "customer"), own)
        self.assertEqual(self.inbound.state, "active", "the system-wide version stays active")

    def test_bad_lines_are_refused(self):
        Field = self.env["ir.model.fields"]
        with self.assertRaises(ValidationError):
            self.inbound.line_ids = [(0, 0, {"source_path": "a..b", "field_id": Field._get("res.partner", "ref").id})]
        with self.assertRaises(ValidationError):
            self.inbound.line_ids = [(0, 0, {"source_path": "x", "transform": "lookup",
                                             "field_id": Field._get("res.partner", "ref").id})]
        with self.assertRaises(ValidationError):
            self.inbound.line_ids = [(0, 0, {"source_path": "x", "field_id": Field._get("res.users", "login").id})]

    def test_users_read_managers_edit(self):
        self.assertEqual(self.inbound.with_user(self.user_hub).line_ids.mapped("source_path"),
                         ["data.object.name", "/data/object/address/country"])
        with self.assertRaises(AccessError):
            self.inbound.with_user(self.user_hub).name = "Renamed"
        with self.assertRaises(AccessError):
            self.env["ps.hub.mapping.dry.run"].with_user(self.user_finance).create({"mapping_id": self.inbound.id})

    def test_outbound_values_of_a_record(self):
        outbound = self.env["ps.hub.mapping"].create({
            "name": "Customer to Stripe", "system": "stripe", "external_object": "customer", "direction": "out",
            "model_id": self.env["ir.model"]._get_id("res.partner"),
            "line_ids": [
                (0, 0, {"source_path": "name", "target_property": "name", "transform": "upper"}),
                (0, 0, {"source_path": "country_id.code", "target_property": "address_country"}),
                (0, 0, {"source_path": "company_id", "target_property": "company"}),
                (0, 0, {"source_path": "vat", "target_property": "tax_id", "required": True}),
                (0, 0, {"source_path": "is_company", "target_property": "business", "transform": "boolean"}),
            ],
        })
        outbound.action_activate()
        partner = self.env["res.partner"].create({"name": "Acme", "country_id": self.env.ref("base.de").id,
                                                  "vat": "DE123456788", "company_id": self.company.id})
        self.assertEqual(outbound._hub_outbound_values(partner), {
            "name": "ACME", "address_country": "DE", "company": self.company.display_name,
            "tax_id": "DE123456788", "business": False})
        partner.vat = False
        with self.assertRaisesRegex(UserError, "tax_id: required"):
            outbound._hub_outbound_values(partner)
        with self.assertRaises(UserError):
            self.inbound._hub_outbound_values(partner)

    def test_manager_builds_a_mapping_in_the_form_and_dry_runs_it_without_events(self):
        Field = self.env["ir.model.fields"]
        with Form(self.env["ps.hub.mapping"].with_user(self.user_manager)) as form:
            form.name = "Stripe charge -> customer"
            form.system = "stripe"
            form.external_object = "charge"
            form.model_id = self.env["ir.model"]._get("res.partner")
            with form.line_ids.new() as line:
                line.source_path = "data.object.description"
                line.field_id = Field._get("res.partner", "ref")
                line.transform = "strip"
        mapping = form.record
        self.assertEqual((mapping.version, mapping.state, len(mapping.line_ids)), (1, "draft", 1))
        action = mapping.action_dry_run()
        wizard = self.env["ps.hub.mapping.dry.run"].browse(action["res_id"])
        self.assertEqual((wizard.event_count, wizard.compare_id), (0, self.env["ps.hub.mapping"]))
        wizard.action_activate()
        self.assertEqual(mapping.state, "active")
        with self.assertRaisesRegex(AssertionError, "readonly"), Form(mapping.with_user(self.user_manager)) as form:
            form.name = "Renamed"  # the form shows an active version read-only
