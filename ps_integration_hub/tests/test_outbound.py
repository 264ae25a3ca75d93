import time
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import requests
from freezegun import freeze_time

from odoo.tests import TransactionCase, tagged

from ps_hub_fakes import FakeSalesforce

from ..services.errors import OutOfTime, PermanentError, TransientError
from .common import HubCaseMixin

SOQL = "SELECT Id, ProductCode FROM OpportunityLineItem WHERE OpportunityId = '0065e00000PaGeSAAV'"


@tagged("post_install", "-at_install")
class TestOutbound(HubCaseMixin, TransactionCase):
    """Calls to the vendors' APIs through connector._hub_request, against the fake vendors."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.start_fake_vendors()

    def setUp(self):
        super().setUp()
        self.fake_salesforce.reset()
        self.fake_hubspot.reset()
        # each test starts without a cached OAuth2 token
        self.startPatcher(patch.dict("odoo.addons.ps_integration_hub.models.ps_hub_connector._TOKENS", clear=True))

    def account(self):
        return self.salesforce._hub_request("GET", "/services/data/v62.0/sobjects/Account/0015e00000QrStUAAV")

    def token_calls(self):
        return len(self.fake_salesforce.calls("POST", "/services/oauth2/token"))

    # ------------------------------------------------------------ OAuth2

    def test_revoked_token_is_refreshed_once(self):
        self.assertEqual(self.account().json()["Id"], "0015e00000QrStUAAV")
        self.assertEqual(self.token_calls(), 1)
        self.account()
        self.assertEqual(self.token_calls(), 1, "the token is kept between calls")
        self.fake_salesforce.revoke_tokens()  # an admin revoked the session, or it expired
        self.assertEqual(self.account().json()["Id"], "0015e00000QrStUAAV")
        self.assertEqual(self.token_calls(), 2, "one new token after the 401")
        statuses = [r.headers.get("Authorization") for r in self.fake_salesforce.calls("GET", "/services/data")]
        self.assertEqual(len(statuses), 4, "the refused call was made once more, with the new token")
        self.assertNotEqual(statuses[2], statuses[3])

    def test_a_second_401_is_a_permanent_authentication_error(self):
        self.account()
        self.fake_salesforce.revoke_tokens()
        # the token endpoint still issues tokens, but the API refuses them (e.g. the integration
        # user lost its API permission)
        with patch.object(FakeSalesforce, "issue_token", lambda fake: "00D5e000001AbCd!not-accepted"), \
                self.assertRaises(PermanentError) as caught:
            self.account()
        self.assertEqual(caught.exception.reason, "authentication")
        self.assertIn("401", str(caught.exception))
        self.assertEqual(self.token_calls(), 2, "one refresh, not a loop")

    def test_a_refused_bearer_token_is_an_authentication_error(self):
        self.hubspot.auth_secret = "pat-revoked"
        with self.assertRaises(PermanentError) as caught:
            self.hubspot._hub_request("GET", "/crm/v3/objects/deals/19077001")
        self.assertEqual(caught.exception.reason, "authentication")

    # ------------------------------------------------------------ rate limits

    def test_retry_after_in_seconds_and_as_an_http_date(self):
        self.fake_hubspot.rate_limit_next(1, policy="DAILY", retry_after=90)
        with self.assertRaises(TransientError) as caught:
            self.hubspot._hub_request("GET", "/crm/v3/objects/deals/19077001")
        self.assertEqual((caught.exception.reason, caught.exception.retry_after), ("rate_limited", 90))

        self.account()  # a token first: the 503 below is the API's
        with freeze_time("2026-11-20 10:00:00"):
            when = datetime.now(UTC) + timedelta(minutes=5)
            self.fake_salesforce.fail_next(1, status=503, retry_after=when)
            with self.assertRaises(TransientError) as caught:
                self.account()
        self.assertEqual((caught.exception.reason, caught.exception.retry_after), ("remote_unavailable", 300))

    def test_token_endpoint_unavailable_is_transient(self):
        self.fake_salesforce.fail_next(1, status=503, retry_after=30)
        with self.assertRaises(TransientError) as caught:
            self.account()
        self.assertEqual((caught.exception.reason, caught.exception.retry_after), ("remote_unavailable", 30))
        self.assertEqual(self.account().status_code, 200)

    # ------------------------------------------------------------ pagination

    def test_soql_query_is_read_page_by_page(self):
        items = [{"ProductCode": f"PS-{i}", "Quantity": 1, "UnitPrice": 10} for i in range(5)]
        self.fake_salesforce.add_opportunity("0065e00000PaGeSAAV", "0015e00000QrStUAAV", items)
        self.fake_salesforce.query_batch_size = 2
        answer = self.salesforce._hub_request("GET", "/services/data/v62.0/query", params={"q": SOQL}).json()
        pages, records = [answer], list(answer["records"])
        while not answer["done"]:
            answer = self.salesforce._hub_request("GET", answer["nextRecordsUrl"]).json()
            pages.append(answer)
            records += answer["records"]
        self.assertEqual([len(p["records"]) for p in pages], [2, 2, 1])
        self.assertEqual({p["totalSize"] for p in pages}, {5})
        self.assertRegex(pages[0]["nextRecordsUrl"], r"^/services/data/v62\.0/query/01g[A-Za-z0-9]{15}-2$")
        self.assertEqual([r["ProductCode"] for r in records], [f"PS-{i}" for i in range(5)])
        self.assertNotIn("nextRecordsUrl", pages[-1])

    def test_salesforce_default_batch_is_2000_records(self):
        items = [{"ProductCode": f"PS-{i}", "Quantity": 1, "UnitPrice": 10} for i in range(2001)]
        self.fake_salesforce.add_opportunity("0065e00000PaGeSAAV", "0015e00000QrStUAAV", items)
        first = self.salesforce._hub_request("GET", "/services/data/v62.0/query", params={"q": SOQL}).json()
        self.assertEqual((len(first["records"]), first["done"], first["totalSize"]), (2000, False, 2001))
        self.assertTrue(first["nextRecordsUrl"].endswith("-2000"))
        rest = self.salesforce._hub_request("GET", first["nextRecordsUrl"]).json()
        self.assertEqual((len(rest["records"]), rest["done"]), (1, True))

    # ------------------------------------------------------------ the worker's time

    def test_call_is_cut_at_the_end_of_the_worker_run(self):
        # (Odoo's test harness raises timeouts under 10 s to 10 s, so the vendor's slowness is
        # played by the mock: what counts is the timeout the call is given and what follows)
        with patch("requests.request", side_effect=requests.ReadTimeout("read timed out")) as call:
            with self.assertRaises(OutOfTime):
                self.hubspot.with_context(ps_hub_call_until=time.monotonic() + 5)._hub_request(
                    "GET", "/crm/v3/objects/deals/19077001")
            self.assertLessEqual(call.call_args.kwargs["timeout"], 5, "cut from the connector's 20 s")
            with self.assertRaises(TransientError) as caught:  # a vendor slower than its own timeout
                self.hubspot.with_context(ps_hub_call_until=time.monotonic() + 600)._hub_request(
                    "GET", "/crm/v3/objects/deals/19077001")
            self.assertNotIsInstance(caught.exception, OutOfTime)
            self.assertEqual((caught.exception.reason, call.call_args.kwargs["timeout"]), ("network", 20))
            with self.assertRaises(OutOfTime):  # no call starts once the run is at its end
                self.hubspot.with_context(ps_hub_call_until=time.monotonic() + 0.5)._hub_request(
                    "GET", "/crm/v3/objects/deals/19077001")
            self.assertEqual(call.call_count, 2)
