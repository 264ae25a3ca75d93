"""One customer, many CRM records; company webhooks matched like deals; free mail domains."""

from unittest.mock import patch

from odoo import api
from odoo.fields import Domain
from odoo.tests import TransactionCase, tagged
from odoo.tools import SQL, mute_logger

from odoo.addons.ps_integration_hub.services.errors import TransientError

from ..models import ps_q2c_engagement as engagement_model
from ..services.engagement import Customer
from .common import Q2CMixin
from .test_deal_integrity import DealCase

LINES = [{"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 10, "price": 100}]


@tagged("post_install", "-at_install")
class TestOneCustomerManyCrmRecords(DealCase):
    def add_duplicates(self):
        """Two HubSpot companies of one customer: one VAT, written two ways; a deal each."""
        fake = self.fake_hubspot
        fake.add_company(8301, "Fabrikam GmbH", vat_number="DE 811 907 980", domain="fabrikam.example")
        fake.add_company(8302, "Fabrikam", vat_number="de811907980", domain="fabrikam-gmbh.example")
        fake.add_deal("4301", "8301", None, LINES)
        fake.add_deal("4302", "8302", None, LINES)

    def test_two_crm_companies_of_one_customer_in_separate_batches(self):
        """The second deal was a dead letter (database_conflict on the binding's record index, 8 tries)."""
        self.add_duplicates()
        first = self.close("4301", base=900)
        second = self.close("4302", base=910)
        self.assertEqual((first.state, second.state), ("done", "done"), second.last_error)
        partner = first._hub_record().partner_id
        self.assertEqual(second._hub_record().partner_id, partner)
        self.assertEqual(self.env["res.partner"].search_count([("vat", "ilike", "811")]), 1)
        self.assertEqual(second.attempts, 1, "not a retried conflict")
        Binding = self.env["ps.hub.binding"]
        self.assertEqual(Binding._hub_lookup(self.hubspot, "company", "8301"), partner)
        self.assertEqual(Binding._hub_lookup(self.hubspot, "company", "8302"), partner)

    def test_two_crm_companies_of_one_new_customer_in_one_batch(self):
        self.add_duplicates()
        first, second = self.close("4301", "4302")
        self.assertEqual((first.state, second.state), ("done", "done"), second.last_error)
        self.assertEqual(first._hub_record().partner_id, second._hub_record().partner_id)
        self.assertEqual(self.env["res.partner"].search_count([("vat", "ilike", "811")]), 1)

    def test_only_the_first_company_of_a_customer_is_synchronised(self):
        """Two HubSpot companies writing one partner would overwrite each other: the first bound wins."""
        self.add_duplicates()
        self.close("4301", "4302")
        events, _dup = self.enqueue(self.hubspot, [
            {"eventId": 950 + i, "subscriptionType": "company.propertyChange", "objectId": company,
             "propertyName": "name", "propertyValue": name}
            for i, (company, name) in enumerate(((8301, "Fabrikam Group GmbH"), (8302, "Fabrikam (old)")))])
        self.process()
        from_first, from_second = events.sorted("idempotency_key")
        self.assertEqual(from_first.state, "done")
        self.assertEqual(from_first._hub_record().name, "Fabrikam Group GmbH")
        self.assertEqual(from_second.state, "ignored")
        self.assertIn("duplicate of company 8301", from_second.ignore_reason)

    def test_stale_customer_binding_is_repointed_not_retried(self):
        """A binding to a deleted customer would make every retry fail on the unique index."""
        self.add_duplicates()
        self.close("4301")
        order = self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "4301")
        partner = order.partner_id
        order.with_context(disable_cancel_warning=True).action_cancel()
        order.unlink()
        partner.unlink()
        self.fake_hubspot.add_deal("4303", "8301", None, LINES)
        event = self.close("4303", base=920)
        self.assertEqual(event.state, "done", event.last_error)
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "company", "8301"),
                         event._hub_record().partner_id)


@tagged("post_install", "-at_install")
class TestCustomerLock(TransactionCase):
    """Two workers on their own cursors and snapshots (committed rows, cleaned up after)."""

    KEY = "vat:ZZ990001TEST"

    def setUp(self):
        super().setUp()
        self.addCleanup(self.cleanup)

    def cleanup(self):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM ps_q2c_customer_lock WHERE key = %s", [self.KEY])

    def lock(self, env):
        connector = env["ps.hub.connector"].browse()
        customer = Customer(external_model="company", external_id="990001", name="Racy Ltd", vat="ZZ990001TEST")
        env["ps.q2c.engagement"]._q2c_lock_customers(connector, [customer], {"990001": ("ZZ990001TEST", None)})

    def test_identity_held_or_committed_by_another_worker_is_busy(self):
        with self.registry.cursor() as cr_a, self.registry.cursor() as cr_b:
            env_a = api.Environment(cr_a, api.SUPERUSER_ID, {})
            env_b = api.Environment(cr_b, api.SUPERUSER_ID, {})
            cr_a.execute("SELECT 1")  # worker A's snapshot starts here
            self.lock(env_b)  # B matches or creates the customer, not committed yet
            with patch.object(engagement_model, "LOCK_TIMEOUT_MS", 200), \
                    self.assertRaises(TransientError) as held, mute_logger("odoo.sql_db"):
                self.lock(env_a)
            self.assertEqual(held.exception.reason, "customer_busy")
            cr_b.commit()
            # B's customer is committed, but invisible to A's snapshot: busy again, never a second one
            with self.assertRaises(TransientError), mute_logger("odoo.sql_db"):
                self.lock(env_a)
            cr_a.rollback()
            self.lock(env_a)  # a fresh transaction (the retry) passes, and finds B's customer

    def test_old_rows_are_collected(self):
        Lock = self.env["ps.q2c.customer.lock"]
        self.env.cr.execute("INSERT INTO ps_q2c_customer_lock (key, locked_at) VALUES "
                            "('vat:OLD1', now() AT TIME ZONE 'UTC' - interval '2 days'), "
                            "('vat:NEW1', now() AT TIME ZONE 'UTC')")
        Lock._gc_customer_locks()
        self.assertEqual(Lock.search([("key", "in", ["vat:OLD1", "vat:NEW1"])]).mapped("key"), ["vat:NEW1"])


@tagged("post_install", "-at_install")
class TestCompanyWebhookMatching(Q2CMixin, TransactionCase):
    def company_event(self, kind, company_id, event_id, prop=None, value=None):
        payload = {"eventId": event_id, "subscriptionType": f"company.{kind}", "objectId": company_id,
                   "occurredAt": 1763632800000 + event_id}
        if prop:
            payload.update(propertyName=prop, propertyValue=value)
        events, _dup = self.enqueue(self.hubspot, [payload])
        self.process()
        return events

    def test_created_company_known_by_vat_binds_the_existing_customer(self):
        existing = self.env["res.partner"].create({"name": "Northwind (old name)", "is_company": True,
                                                   "vat": "GB 123 456 782"})
        event = self.company_event("creation", 5500071, 1)
        self.assertEqual((event.state, event._hub_record()), ("done", existing))
        self.assertFalse(self.env["res.partner"].search([("name", "like", "HubSpot company")]), "no placeholder")
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "company", "5500071"), existing)

    def test_changed_unbound_company_known_by_domain_binds_the_existing_customer(self):
        existing = self.env["res.partner"].create({"name": "Northwind", "is_company": True,
                                                   "website": "https://www.northwind-legal.example"})
        event = self.company_event("propertyChange", 5500071, 2, "phone", "+44 20 7946 0000")
        self.assertEqual(event._hub_record(), existing)
        self.assertEqual(existing.phone, "+44 20 7946 0000", "the change itself is applied")
        self.assertEqual(self.env["res.partner"].search_count([("name", "ilike", "northwind")]), 1)

    def test_created_company_unknown_to_odoo_is_created_from_hubspot(self):
        event = self.company_event("creation", 5500071, 3)
        partner = event._hub_record()
        self.assertEqual((partner.name, partner.vat, partner.city, partner.website),
                         ("Northwind Legal LLP", "GB123456782", "London", "https://northwind-legal.example"))
        read = self.fake_hubspot.calls("POST", "/crm/v3/objects/companies/batch/read")
        self.assertEqual([i["id"] for i in read[0].body["inputs"]], ["5500071"])

    def test_company_in_conflict_is_an_exception(self):
        self.env["res.partner"].create({"name": "NW by VAT", "is_company": True, "vat": "GB123456782"})
        self.env["res.partner"].create({"name": "NW by domain", "is_company": True,
                                        "website": "northwind-legal.example"})
        event = self.company_event("creation", 5500071, 4)
        self.assertEqual((event.state, event.reason), ("exception", "customer_conflict"))

    def test_company_gone_from_hubspot_is_ignored(self):
        event = self.company_event("creation", 5599999, 5)
        self.assertEqual(event.state, "ignored")
        self.assertIn("no longer exists", event.ignore_reason)


@tagged("post_install", "-at_install")
class TestFreeMailDomains(DealCase):
    def test_free_mail_domain_never_matches_a_customer(self):
        sole_trader = self.env["res.partner"].create({
            "name": "Ada Consulting", "is_company": True, "email": "ada.consulting@gmail.com"})
        self.fake_hubspot.add_company(8401, "Bob Builds", domain="gmail.com")
        self.fake_hubspot.add_deal("4401", "8401", None, LINES)
        event = self.close("4401")
        self.assertEqual(event.state, "done", event.last_error)
        partner = event._hub_record().partner_id
        self.assertNotEqual(partner, sole_trader)
        self.assertEqual(partner.name, "Bob Builds")
        self.assertFalse(partner.website, "gmail.com is not Bob's website")

    def test_country_variants_of_free_mail(self):
        self.env["res.partner"].create({"name": "Hans", "is_company": True, "email": "hans@gmx.de"})
        self.fake_hubspot.add_company(8402, "Grete", domain="gmx.de")
        self.fake_hubspot.add_deal("4402", "8402", None, LINES)
        event = self.close("4402")
        self.assertEqual(event._hub_record().partner_id.name, "Grete")

    def test_administrator_extends_the_list(self):
        local_isp = self.env["res.partner"].create({
            "name": "Client of a local ISP", "is_company": True, "email": "someone@mail.local-isp.example"})
        self.env["ir.config_parameter"].set_param("ps_quote_to_cash.free_mail_domains",
                                                  "other.example, mail.local-isp.example")
        self.fake_hubspot.add_company(8403, "Another client of that ISP", domain="mail.local-isp.example")
        self.fake_hubspot.add_deal("4403", "8403", None, LINES)
        event = self.close("4403")
        self.assertNotEqual(event._hub_record().partner_id, local_isp)

    def test_company_domain_still_matches(self):
        """The control: a company's own domain does match."""
        firm = self.env["res.partner"].create({"name": "Firm", "is_company": True, "email": "ap@firm.example"})
        self.fake_hubspot.add_company(8404, "Firm Ltd", domain="firm.example")
        self.fake_hubspot.add_deal("4404", "8404", None, LINES)
        self.assertEqual(self.close("4404")._hub_record().partner_id, firm)

    def test_company_website_in_any_form_matches(self):
        firm = self.env["res.partner"].create({"name": "Firm", "is_company": True,
                                               "website": "HTTP://www.Firm2.example:8080/contact"})
        self.fake_hubspot.add_company(8405, "Firm Two Ltd", domain="firm2.example")
        self.fake_hubspot.add_deal("4405", "8405", None, LINES)
        self.assertEqual(self.close("4405")._hub_record().partner_id, firm)


@tagged("post_install", "-at_install")
class TestDomainLookupIsIndexed(TransactionCase):
    def test_the_domain_lookup_reads_the_host_indexes(self):
        """The matching's expressions are the indexes' own: a change to one that the other does
        not follow makes every deal scan the partner table, and nothing else would tell."""
        partner = self.env["res.partner"].create({"name": "Indexed", "is_company": True,
                                                  "website": "https://www.indexed.example/about"})
        found = self.env["ps.q2c.engagement"]._q2c_partners_by_domain(
            Domain("is_company", "=", True), {"indexed.example"})
        self.assertEqual(found["indexed.example"], partner)
        # on a small table the planner may prefer another plan: forbid the others, then the
        # index must serve the expression itself (an Index Cond, not a filter after a scan)
        self.env.cr.execute("SET LOCAL enable_seqscan = off")
        self.env.cr.execute("SET LOCAL enable_bitmapscan = off")
        for host, index in ((engagement_model.WEBSITE_HOST, "res_partner_q2c_website_host_idx"),
                            (engagement_model.EMAIL_HOST, "res_partner_q2c_email_host_idx")):
            self.env.cr.execute(SQL("EXPLAIN SELECT id FROM res_partner WHERE is_company AND %s = ANY(%s)",
                                    SQL(host), ["indexed.example"]))
            plan = "\n".join(row[0] for row in self.env.cr.fetchall())
            self.assertIn(f"Index Scan using {index}", plan)
            self.assertIn("Index Cond", plan)
