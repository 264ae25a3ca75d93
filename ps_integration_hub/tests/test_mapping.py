"""The mapping engine (services/mapping.py) without a database."""

from datetime import date, datetime

from odoo.tests import BaseCase, tagged

from ..services import mapping as m

DEAL = {
    "id": "1001",
    "properties": {
        "dealname": "  Northwind rollout ",
        "amount": "12500.505",
        "deal_currency_code": "eur",
        "closedate": "2026-03-31T00:00:00Z",
        "dealstage": "ClosedWon",
        "legal_entity": "PS Consulting GmbH",
        "is_renewal": "yes",
        "domain": "northwind.example",
        "a/b": "slash",
    },
    "associations": {"companies": {"results": [{"id": "77"}]}},
}
VALUE_MAPS = {"deal_stage": {"closedwon": "won", "closedlost": "lost"}, "company": {"ps consulting gmbh": 3}}


@tagged("post_install", "-at_install")
class TestMappingEngine(BaseCase):
    def test_direct_rules_with_modifiers(self):
        mapping = m.compile_mapping([
            (m.stripped("properties.dealname"), "name"),
            (m.money("/properties/amount"), "amount"),
            (m.upper("properties.deal_currency_code"), "currency"),
            (m.as_date("properties.closedate"), "date_order"),
            (m.lookup("properties.dealstage", "deal_stage"), "stage"),
            (m.lookup("properties.legal_entity", "company"), "company_id"),
            (m.boolean("properties.is_renewal"), "renewal"),
            (m.url("properties.domain"), "website"),
            ("associations.companies.results.0.id", "company_ref"),
            ("/properties/a~1b", "slashed"),
        ], VALUE_MAPS)
        result = mapping.apply(DEAL)
        self.assertTrue(result.ok, result.problems())
        self.assertEqual(result.values, {
            "name": "Northwind rollout", "amount": 12500.51, "currency": "EUR", "date_order": date(2026, 3, 31),
            "stage": "won", "company_id": 3, "renewal": True, "website": "https://northwind.example",
            "company_ref": "77", "slashed": "slash",
        })

    def test_transforms_read_what_vendors_send(self):
        self.assertEqual(m._date("1774915200000"), date(2026, 3, 31))  # HubSpot webhook: epoch ms as text
        self.assertEqual(m._date(1774915200000), date(2026, 3, 31))
        self.assertEqual(m._date("2026-03-31"), date(2026, 3, 31))
        self.assertEqual(m._datetime("2026-03-31T10:15:00+02:00"), datetime(2026, 3, 31, 8, 15))
        self.assertEqual(m._datetime("2026-03-31T10:15:00.123Z"), datetime(2026, 3, 31, 10, 15, 0, 123000))
        self.assertEqual(m._money(" 1 000.005 "), 1000.01)  # half away from zero, as Odoo rounds
        self.assertEqual(m._money(-2.675, 2), -2.68)
        self.assertEqual(m._money(7), 7.0)
        for word, expected in (("TRUE", True), ("no", False), ("1", True), ("off", False), (0, False)):
            self.assertIs(m._boolean(word), expected, word)
        self.assertEqual(m._url("https://a.example/x"), "https://a.example/x")
        for bad, transform in (("abc", m._money), ("NaN", m._money), ("Infinity", m._money), (True, m._money),
                               ("maybe", m._boolean), (2, m._boolean), ("31/03/2026", m._date),
                               ("2026-02-30", m._date), ({"a": 1}, m._upper)):
            with self.assertRaises(ValueError, msg=repr(bad)):
                transform(bad)

    def test_errors_missing_and_defaults(self):
        mapping = m.compile_mapping([
            (m.required(m.money("properties.amount")), "amount"),
            (m.required("properties.po_number"), "client_order_ref"),
            (m.default(m.upper("properties.deal_currency_code"), "usd"), "currency"),
            (m.default(m.lookup("properties.dealstage", "deal_stage"), "closedlost"), "stage"),
            (m.lookup("properties.legal_entity", "company"), "company_id"),
            ("properties.hs_note", "note"),
        ], VALUE_MAPS, empty=False)
        result = mapping.apply({"properties": {"amount": "12,5", "po_number": "  ", "legal_entity": "Other Ltd"}})
        self.assertFalse(result.ok)
        self.assertIn("is not an amount", result.errors["amount"])
        self.assertIn("has no entry for 'Other Ltd'", result.errors["company_id"])
        self.assertEqual(result.unmatched, {"company_id": ("company", "Other Ltd")}, "for a caller to resolve")
        self.assertEqual(result.missing, [], "a blank PO is a value (no strip asked), not a missing one")
        self.assertEqual(result.values, {"client_order_ref": "  ", "currency": "USD", "stage": "lost", "note": False})
        result = mapping.apply({"properties": {"amount": "5", "po_number": None}})
        self.assertEqual(result.missing, ["client_order_ref"])
        self.assertEqual(result.failed, ["client_order_ref"])
        self.assertEqual(len(result.problems()), 1)

    def test_partial_payload_maps_only_what_it_carries(self):
        mapping = m.compile_mapping([
            (m.required("properties.name"), "name"),
            (m.url("properties.domain"), "website"),
            (m.default("properties.city", "Berlin"), "city"),
        ], empty=False)
        self.assertEqual(mapping.apply({"properties": {"domain": "x.example"}}, partial=True).values,
                         {"website": "https://x.example"})
        blanked = mapping.apply({"properties": {"domain": ""}}, partial=True)
        self.assertEqual(blanked.values, {"website": False}, "a property emptied in the CRM empties the field")
        full = mapping.apply({"properties": {"domain": "x.example"}})
        self.assertEqual(full.missing, ["name"])
        self.assertEqual(full.values["city"], "Berlin")

    def test_bad_mappings_are_refused_when_compiled(self):
        for direct in ([("", "name")], [("a..b", "name")], [("a", "")], [("a", "x"), ("b", "x")],
                       [(m.lookup("a", "nowhere"), "x")], [(m.Source("a", (("rot13", None),)), "x")],
                       [("a",)]):
            with self.assertRaises(m.MappingError, msg=repr(direct)):
                m.compile_mapping(direct, VALUE_MAPS)

    def test_paths_and_changes(self):
        self.assertEqual(m.parse_path("properties.name"), ("properties", "name"))
        self.assertEqual(m.parse_path("/properties/name"), ("properties", "name"))
        self.assertEqual(m.parse_path("/a~0b/c~1d"), ("a~b", "c/d"))
        self.assertIs(m.read_path({"a": [1]}, ("a", "3")), m.MISSING)
        self.assertIs(m.read_path({"a": "text"}, ("a", "b")), m.MISSING)
        self.assertEqual(m.compile_mapping([("/properties/name", "name")]).sources_of("properties.name"), ["name"])
        self.assertEqual(
            m.changes({"name": "B", "vat": False, "amount": 1.0, "flag": True, "new": "x"},
                      {"name": "A", "vat": None, "amount": 1, "flag": 1}),
            {"name": ("A", "B"), "flag": (1, True), "new": (None, "x")},
        )

    def test_convert_modifier_and_composition_order(self):
        mapping = m.compile_mapping([(m.upper(m.convert(m.stripped("a"), lambda v: v[::-1])), "b")])
        self.assertEqual(mapping.apply({"a": " xyz "}).values, {"b": "ZYX"})
