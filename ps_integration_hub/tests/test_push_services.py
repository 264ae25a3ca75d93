import time
from datetime import datetime, timedelta

import requests

from odoo.tests import BaseCase, tagged

from ps_hub_fakes import FakeHubSpot, FakeSalesforce

from ..models.ps_hub_connector import retry_after_seconds
from ..services import push

NOW = datetime(2026, 11, 20, 10, 0, 0)


def pushed(event_id, properties, started_at=NOW, external_id="19077001", external_model="deal"):
    return push.Pushed(event_id, external_model, external_id, properties, started_at)


@tagged("post_install", "-at_install")
class TestPushServices(BaseCase):
    """Keys, HubSpot batch answers and echoes in plain Python; the fakes' push endpoints and
    rate limit as the vendors document them."""

    def test_versions_and_keys(self):
        self.assertEqual(push.digest({"a": 1, "b": 2}), push.digest({"b": 2, "a": 1}))
        self.assertNotEqual(push.default_version(NOW, {"a": 1}), push.default_version(NOW, {"a": 2}))
        self.assertNotEqual(push.default_version(NOW, {"a": 1}),
                            push.default_version(NOW + timedelta(microseconds=1), {"a": 1}))
        self.assertEqual(push.push_key("deal", "7", "account.move,3", "v1"), "push:deal:7:account.move,3:v1")
        self.assertEqual(push.merge_properties({"a": 1, "b": 1}, {"b": 2}), {"a": 1, "b": 2})

    def test_only_plain_ids_go_into_a_vendor_path(self):
        self.assertTrue(push.path_safe("19077001"))
        self.assertTrue(push.path_safe("0065e00000GhIjKAAV"))
        for bad in ("", "..", "1/../../owners", "1?archived=true", "1%2F2", "a b", None, 7):
            self.assertFalse(push.path_safe(bad), bad)

    def test_hubspot_batch_failures(self):
        body = {"status": "COMPLETE", "results": [{"id": "1"}], "numErrors": 1, "errors": [
            {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some DEAL objects",
             "context": {"ids": ["2"]}}]}
        self.assertEqual(push.hubspot_batch_failures(["1", "2"], body),
                         {"2": "OBJECT_NOT_FOUND: Could not get some DEAL objects"})
        # an error naming no id fails what the results do not list; so does a silent omission
        body = {"results": [{"id": "1"}], "errors": [{"category": "VALIDATION_ERROR", "message": "bad"}]}
        self.assertEqual(push.hubspot_batch_failures(["1", "2"], body), {"2": "VALIDATION_ERROR: bad"})
        self.assertEqual(set(push.hubspot_batch_failures(["1", "2"], {"results": [{"id": "2"}]})), {"1"})
        self.assertEqual(set(push.hubspot_batch_failures(["1"], None)), {"1"})

    def test_values_compare_as_the_vendor_stores_them(self):
        self.assertTrue(push.same_value(1500.0, "1500"))
        self.assertTrue(push.same_value(True, "true"))
        self.assertTrue(push.same_value(None, ""))
        self.assertFalse(push.same_value(True, "1"))
        self.assertFalse(push.same_value("paid", "Paid"))

    def test_a_hubspot_property_change_equal_to_our_latest_push_is_its_echo(self):
        change = push.change_of("hubspot", "deal.propertyChange", {
            "objectId": 19077001, "propertyName": "invoice_status", "propertyValue": "paid"},
            NOW + timedelta(seconds=2))
        self.assertEqual(change.external_model, "deal")
        older, latest = pushed(1, {"invoice_status": "posted"}, NOW - timedelta(minutes=1)), pushed(2, {
            "invoice_status": "paid"})
        self.assertEqual(push.echo_of(change, [latest, older]), latest)
        # the latest push of the property counts, not an older one
        self.assertIsNone(push.echo_of(change, [pushed(3, {"invoice_status": "posted"}),
                                                pushed(1, {"invoice_status": "paid"}, NOW - timedelta(minutes=1))]))
        self.assertIsNone(push.echo_of(change, [pushed(2, {"invoice_status": "paid"}, external_id="5")]))
        self.assertIsNone(push.echo_of(change, [pushed(2, {"amount": "paid"})]))
        early = push.Change("deal", "19077001", {"invoice_status": "paid"}, NOW - timedelta(minutes=5))
        self.assertIsNone(push.echo_of(early, [latest]), "made before the push: someone else's")
        self.assertIsNone(push.change_of("hubspot", "deal.creation", {"objectId": 1}))
        self.assertIsNone(push.change_of("stripe", "invoice.paid", {"id": "in_1"}))

    def test_our_value_brought_back_after_a_real_change_is_not_an_echo(self):
        ours = pushed(1, {"odoo_order_status": "sale"})

        def change(value, seconds, name="odoo_order_status"):
            return push.Change("deal", "19077001", {name: value},
                               None if seconds is None else NOW + timedelta(seconds=seconds))

        echo, cancelled, back = change("sale", 2), change("cancelled", 30), change("sale", 60)
        self.assertEqual(push.echo_of(echo, [ours], []), ours)
        self.assertIsNone(push.echo_of(cancelled, [ours], []), "another value: someone's")
        self.assertIsNone(push.echo_of(back, [ours], [cancelled]),
                          "sale again after someone's cancelled: the CRM left our value, this is someone's")
        self.assertEqual(push.echo_of(back, [ours]), ours, "without the real change it would pass as the echo")
        # a real change of another property, of another deal, or made after it does not count
        self.assertEqual(push.echo_of(back, [ours], [change("closedlost", 30, "dealstage")]), ours)
        other_deal = push.Change("deal", "5", {"odoo_order_status": "cancelled"}, NOW + timedelta(seconds=30))
        self.assertEqual(push.echo_of(back, [ours], [other_deal]), ours)
        self.assertEqual(push.echo_of(echo, [ours], [cancelled]), ours, "cancelled came after the echo")
        # nor does a real change made before the push began (it is what we pushed over)
        self.assertEqual(push.echo_of(back, [ours], [change("cancelled", -60)]), ours)
        # a real change the clocks cannot place counts: better processed twice than lost
        self.assertIsNone(push.echo_of(back, [ours], [change("cancelled", None)]))

    def test_a_salesforce_record_brought_back_after_a_real_change_is_not_an_echo(self):
        opportunity = "0065e00000GhIjKAAV"
        ours = pushed(7, {"Invoice_Status__c": "Paid"}, external_model="Opportunity", external_id=opportunity)

        def record(status, seconds, amount="151500.0"):
            return push.Change("Opportunity", opportunity, {"Invoice_Status__c": status, "Amount": amount},
                               NOW + timedelta(seconds=seconds))

        back = record("Paid", 60, amount="1.0")
        self.assertEqual(push.echo_of(back, [ours], [record("Paid", 30)]), ours,
                         "a record with our fields as we set them left nothing of ours")
        self.assertIsNone(push.echo_of(back, [ours], [record("Posted", 30)]))
        self.assertEqual(push.echo_of(back, [ours], [record("Posted", -60)]), ours)

    def test_a_salesforce_message_with_our_values_is_their_echo(self):
        payload = {"sobject_type": "Opportunity", "sobject": {
            "Id": "0065e00000GhIjKAAV", "Invoice_Status__c": "Paid", "Amount": "151500.0",
            "LastModifiedDate": "2026-11-20T10:00:03.000Z"}}
        change = push.change_of("salesforce", "Opportunity.outbound_message", payload)
        self.assertEqual(change.occurred_at, NOW + timedelta(seconds=3))
        ours = pushed(7, {"Invoice_Status__c": "Paid"}, external_model="Opportunity", external_id="0065e00000GhIjKAAV")
        self.assertEqual(push.echo_of(change, [ours]), ours)
        other = pushed(7, {"Invoice_Status__c": "Posted"}, external_model="Opportunity",
                       external_id="0065e00000GhIjKAAV")
        self.assertIsNone(push.echo_of(change, [other]))

    # ------------------------------------------------------------ the fakes

    def test_fake_hubspot_rolling_window(self):
        with FakeHubSpot(token="t") as fake:
            fake.limit_rate(3, 1000)
            url = f"{fake.base_url}/crm/v3/objects/deals/19077001"
            headers = {"Authorization": "Bearer t"}
            answers = [requests.get(url, headers=headers, timeout=5) for _ in range(4)]
            self.assertEqual([a.status_code for a in answers], [200, 200, 200, 429])
            self.assertEqual([a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers], ["2", "1", "0", "0"])
            refused = answers[-1]
            self.assertEqual(refused.json()["policyName"], "TEN_SECONDLY_ROLLING")
            self.assertEqual(refused.json()["errorType"], "RATE_LIMIT")
            self.assertEqual((refused.headers["X-HubSpot-RateLimit-Max"],
                              refused.headers["X-HubSpot-RateLimit-Interval-Milliseconds"]), ("3", "1000"))
            self.assertNotIn("Retry-After", refused.headers)
            self.assertEqual(retry_after_seconds(refused.headers), 1.0)
            self.assertEqual(fake.refused, 1)
            time.sleep(1.05)
            self.assertEqual(requests.get(url, headers=headers, timeout=5).status_code, 200, "the window rolled")

    def test_fake_hubspot_batch_update_refuses_duplicates_and_more_than_100(self):
        with FakeHubSpot() as fake:
            url = f"{fake.base_url}/crm/v3/objects/deals/batch/update"
            headers = {"Authorization": "Bearer t"}
            same = {"inputs": [{"id": "19077001", "properties": {"a": "1"}}] * 2}
            answer = requests.post(url, json=same, headers=headers, timeout=5)
            self.assertEqual((answer.status_code, answer.json()["category"]), (400, "VALIDATION_ERROR"))
            many = {"inputs": [{"id": str(i), "properties": {}} for i in range(101)]}
            self.assertEqual(requests.post(url, json=many, headers=headers, timeout=5).status_code, 400)

    def test_fake_salesforce_patch_updates_and_never_creates(self):
        with FakeSalesforce() as fake:
            headers = {"Authorization": f"Bearer {fake.issue_token()}"}
            base = f"{fake.base_url}/services/data/v62.0/sobjects/Opportunity"
            answer = requests.patch(f"{base}/0065e00000GhIjKAAV", json={"Invoice_Status__c": "Paid"},
                                    headers=headers, timeout=5)
            self.assertEqual((answer.status_code, answer.content), (204, b""))
            self.assertEqual(fake.opportunities["0065e00000GhIjKAAV"]["Invoice_Status__c"], "Paid")
            missing = requests.patch(f"{base}/0065e00000NoSuCHAA", json={"StageName": "x"}, headers=headers,
                                     timeout=5)
            self.assertEqual((missing.status_code, missing.json()[0]["errorCode"]), (404, "NOT_FOUND"))
            self.assertNotIn("0065e00000NoSuCHAA", fake.opportunities)
