"""Which deal stages are won is data: the entries of the Deal stage value map valued won."""

from odoo.tests import TransactionCase, tagged

from ps_hub_fakes import load_fixture

from .common import Q2CMixin, stage_change

CUSTOM_WON = "98765432"  # the won stage of a custom pipeline: an id HubSpot chose


@tagged("post_install", "-at_install")
class TestHubSpotWonStages(Q2CMixin, TransactionCase):
    def setUp(self):
        super().setUp()
        # a deal of a custom pipeline, which HubSpot shows at that pipeline's won stage
        self.fake_hubspot.add_deal(
            "4001", "9401", None,
            [{"name": "Consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 4, "price": 1200}],
            dealname="Custom pipeline deal", pipeline="77001", dealstage=CUSTOM_WON)

    def move(self, event_id, deal_id, stage):
        events, _dup = self.enqueue(self.hubspot, [stage_change(event_id, deal_id, stage)])
        self.process()
        return events

    def test_custom_pipeline_won_stage_is_one_entry_of_the_deal_stage_map(self):
        before = self.move(800, "4001", CUSTOM_WON)
        self.assertEqual((before.state, before.reason), ("ignored", "not_applicable"))
        self.assertIn(f"dealstage changed to '{CUSTOM_WON}', not a closed-won stage", before.ignore_reason)
        self.assertIn("Deal stage value map (Integration Hub > Configuration > Value Maps)", before.ignore_reason)
        self.assertFalse(self.fake_hubspot.calls("GET", "/crm/v3/objects/deals/4001"), "not read from HubSpot")
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Company 9401")]))

        self.add_deal_stage(CUSTOM_WON)  # no restart, no update: the next event counts it
        after = self.move(801, "4001", CUSTOM_WON)
        self.assertEqual(after.state, "done", after.last_error)
        order = after._hub_record()
        self.assertEqual((order._name, order.state, order.amount_untaxed), ("sale.order", "sale", 4800))
        self.assertEqual(order.partner_id.name, "Company 9401")
        self.assertTrue(order.project_ids, "sale_project made the project")
        self.assertEqual(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "4001"), order)

    def test_an_open_stage_is_still_ignored_with_the_stage_named(self):
        self.add_deal_stage(CUSTOM_WON)
        moved = self.move(802, "4001", "98765431")
        self.assertEqual(moved.state, "ignored")
        self.assertIn("'98765431'", moved.ignore_reason)
        other = self.move(803, "4001", None)
        self.assertEqual(other.state, "ignored", "a stage emptied is no stage")

    def test_deal_no_longer_at_a_won_stage_is_refused(self):
        """The webhook names the custom won stage; HubSpot's deal has moved on since."""
        self.add_deal_stage(CUSTOM_WON)
        self.fake_hubspot.deals["4001"]["properties"]["dealstage"] = "98765431"
        won = self.move(804, "4001", CUSTOM_WON)
        self.assertEqual((won.state, won.reason), ("ignored", "not_applicable"))
        self.assertIn("at stage '98765431' in HubSpot now, not a won stage", won.ignore_reason)
        self.assertIn(f"'{CUSTOM_WON}'", won.ignore_reason)
        self.assertIn("'closedwon'", won.ignore_reason)
        self.assertEqual(len(self.fake_hubspot.calls("GET", "/crm/v3/objects/deals/4001")), 1)
        self.assertFalse(self.fake_hubspot.calls("GET", "/crm/v3/objects/companies/"), "nothing read past the deal")
        self.assertIsNone(self.env["ps.hub.binding"]._hub_lookup(self.hubspot, "deal", "4001"))

    def test_entry_changed_counts_at_once(self):
        """The map decides alone while it is active: closedwon valued lost is not won."""
        closedwon = self.env.ref("ps_quote_to_cash.value_map_deal_stage_closedwon")
        self.move(805, "19077001", "appointmentscheduled")  # the won stages are cached by now
        closedwon.with_user(self.user_manager).value = "lost"
        lost = self.move(806, "19077001", "closedwon")
        self.assertEqual(lost.state, "ignored")
        self.assertIn("'closedwon', not a closed-won stage", lost.ignore_reason)
        closedwon.with_user(self.user_manager).value = "won"
        won = self.move(807, "19077001", "closedwon")
        self.assertEqual(won.state, "done", won.last_error)

    def test_archived_map_falls_back_to_closedwon(self):
        self.add_deal_stage(CUSTOM_WON)
        self.move(808, "4001", "appointmentscheduled")  # the map's won stages are cached by now
        self.deal_stage_map().with_user(self.user_manager).action_archive()
        custom = self.move(809, "4001", CUSTOM_WON)
        self.assertEqual(custom.state, "ignored", "an archived map's entries do not count")
        events, _dup = self.enqueue(self.hubspot, load_fixture("hubspot/webhook_deal_closedwon.json").encode())
        self.process()
        won, other = events.sorted("idempotency_key")
        self.assertEqual(won.state, "done", won.last_error)
        self.assertEqual(won._hub_record().state, "sale")
        self.assertEqual(other.state, "ignored")

    def test_deleted_map_falls_back_to_closedwon(self):
        self.deal_stage_map().unlink()
        self.assertEqual(self.move(810, "4001", CUSTOM_WON).state, "ignored")
        won = self.move(811, "19077001", "closedwon")
        self.assertEqual(won.state, "done", won.last_error)


@tagged("post_install", "-at_install")
class TestSalesforceWonStages(Q2CMixin, TransactionCase):
    OPP = "0065e00000WonSgAAA"

    def setUp(self):
        super().setUp()
        # an org that renamed its won stage: REST says IsWon, the message may not carry it
        self.fake_salesforce.add_opportunity(
            self.OPP, "0015e00000QrStUAAV",
            [{"ProductCode": "PS-CONSULT-TM", "Name": "Consulting", "Quantity": 5, "UnitPrice": 1000}],
            Name="Renamed stage deal", StageName="Won - Signed")

    def deliver(self, notification_id, is_won):
        body = self.fake_salesforce.outbound_message([{
            "notification_id": notification_id, "opportunity_id": self.OPP, "account_id": "0015e00000QrStUAAV",
            "stage": "Won - Signed", "is_won": is_won, "name": "Renamed stage deal"}])
        events, _dup = self.enqueue(self.salesforce, body)
        self.process()
        return events

    def test_renamed_won_stage_is_one_entry_of_the_deal_stage_map(self):
        before = self.deliver("04l5e00000WonAAAA1", None)
        self.assertEqual((before.state, before.reason), ("ignored", "not_applicable"))
        self.assertIn("at stage 'Won - Signed', not won", before.ignore_reason)
        self.assertIn("Deal stage value map", before.ignore_reason)
        self.assertFalse(self.fake_salesforce.calls("GET", f"/services/data/v62.0/sobjects/Opportunity/{self.OPP}"))

        self.add_deal_stage("Won - Signed")
        after = self.deliver("04l5e00000WonAAAA2", False)  # IsWon false in the message: the stage says won
        self.assertEqual(after.state, "done", after.last_error)
        order = after._hub_record()
        self.assertEqual((order.state, order.company_id, order.amount_untaxed), ("sale", self.inc, 5000))
        self.assertTrue(order.project_ids)
        self.assertTrue(self.fake_salesforce.calls("GET", f"/services/data/v62.0/sobjects/Opportunity/{self.OPP}"),
                        "REST decided")

    def test_message_without_is_won_is_processed_by_its_stage(self):
        self.add_deal_stage("Won - Signed")
        event = self.deliver("04l5e00000WonAAAA3", None)
        self.assertEqual(event.state, "done", event.last_error)
        self.assertEqual(event._hub_record().state, "sale")

    def test_rest_is_won_stays_authoritative(self):
        self.add_deal_stage("Won - Signed")
        self.fake_salesforce.opportunities[self.OPP].update(IsWon=False, IsClosed=False)
        event = self.deliver("04l5e00000WonAAAA4", None)
        self.assertEqual((event.state, event.reason), ("ignored", "not_applicable"))
        self.assertIn("not won in Salesforce", event.ignore_reason)
        self.assertIsNone(self.env["ps.hub.binding"]._hub_lookup(self.salesforce, "Opportunity", self.OPP))
