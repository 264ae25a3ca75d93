import hashlib
import hmac
import json
import time
from types import SimpleNamespace

from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged

from odoo.addons.ps_integration_hub.models.ps_hub_connector import PsHubConnector
from odoo.addons.ps_integration_hub.services.signatures import SignatureError
from odoo.addons.ps_integration_hub.tests.common import secret_key_patcher

from ..services import acme

SECRET = "acme_whsec_5f2d8c1e9b7a4630"
ACME_TYPE = "application/vnd.acme.webhook+json"
CONNECTOR_LOGGER = "odoo.addons.ps_integration_hub.models.ps_hub_connector"


def acme_headers(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict:
    """Signed as Acme's documentation says (services/acme.py), written here from the
    documentation rather than with the addon's own sign()."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Acme-Timestamp": str(timestamp), "X-Acme-Signature": f"v1={digest}"}


def delivery(*events, workspace="ws_4f1c") -> bytes:
    return json.dumps({"delivery_id": "dlv_7", "workspace_id": workspace, "events": list(events)}).encode()


PING = {"id": "evt_ping_1", "type": "acme.ping", "created_at": 1763632800}
CONTACT = {"id": "evt_2001", "type": "acme.contact.updated", "created_at": 1763632860,
           "object": {"type": "contact", "id": "c_1042", "email": "ada@example.com"}}


@tagged("post_install", "-at_install")
class TestAcmeInbound(HttpCase):
    """Acme deliveries through the hub's real inbound route: the hub knows nothing of Acme,
    the addon's connector overrides decide."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.startClassPatcher(secret_key_patcher())
        cls.acme = cls.env["ps.hub.connector"].create({
            "name": "Acme test", "system": "acme", "signing_secret": SECRET, "auth_type": "none",
            "acme_workspace_id": "ws_4f1c",
        })

    def post(self, body, headers=None, content_type=ACME_TYPE):
        url = f"{self.base_url()}/ps_hub/in/{self.acme.sudo().inbound_token}"
        return self.url_open(url, data=body, method="POST", allow_redirects=False,
                             headers={"Content-Type": content_type, **(headers or {})})

    def events(self):
        return self.env["ps.hub.event"].search([("connector_id", "=", self.acme.id)], order="id")

    def test_signed_delivery_is_stored_with_its_types_and_ids(self):
        body = delivery(PING, CONTACT)
        response = self.post(body, acme_headers(body), content_type=f"{ACME_TYPE}; version=1")
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json(), {"accepted": 2, "duplicates": 0})
        ping, contact = self.events()
        self.assertRecordValues(ping + contact, [
            {"system": "acme", "event_type": "acme.ping", "idempotency_key": "evt_ping_1",
             "external_id": False, "ordering_key": False, "state": "pending"},
            {"system": "acme", "event_type": "acme.contact.updated", "idempotency_key": "evt_2001",
             "external_id": "c_1042", "ordering_key": "contact:c_1042", "state": "pending"},
        ])
        self.assertEqual(contact.payload["object"]["email"], "ada@example.com")
        self.assertEqual(str(contact.occurred_at), "2025-11-20 10:01:00")
        # Acme redelivers after a timeout: acknowledged, nothing stored twice
        response = self.post(body, acme_headers(body))
        self.assertEqual(response.json(), {"accepted": 0, "duplicates": 2})
        self.assertEqual(len(self.events()), 2)

    def test_bad_signatures_are_401_and_counted(self):
        body = delivery(CONTACT)
        now = int(time.time())
        good = acme_headers(body)
        cases = {
            "forged": acme_headers(body, secret="guess"),
            "stale": acme_headers(body, timestamp=now - 6 * 60),
            "future": acme_headers(body, timestamp=now + 6 * 60),
            "tampered": acme_headers(body.replace(b"c_1042", b"c_9999")),
            "no signature": {"X-Acme-Timestamp": good["X-Acme-Timestamp"]},
            "no timestamp": {"X-Acme-Signature": good["X-Acme-Signature"]},
            "timestamp of another request": dict(good, **{"X-Acme-Timestamp": str(now - 1)}),
            "hubspot style header": {"X-HubSpot-Signature-v3": good["X-Acme-Signature"]},
            "non-ascii signature": dict(good, **{"X-Acme-Signature": "v1=\u00e9" * 16}),
            "huge timestamp": dict(good, **{"X-Acme-Timestamp": "9" * 400}),
        }
        for label, headers in cases.items():
            with self.subTest(label), self.assertLogs(CONNECTOR_LOGGER, "WARNING") as logs:
                response = self.post(body, headers)
                self.assertEqual(response.status_code, 401, response.text)
            self.assertNotIn(SECRET, "\n".join(logs.output))
        self.acme.invalidate_recordset()
        self.assertEqual(self.acme.signature_failure_count, len(cases))
        self.assertFalse(self.events())

    def test_deliveries_of_another_workspace_are_refused(self):
        other = delivery(CONTACT, workspace="ws_9999")
        with self.assertLogs(CONNECTOR_LOGGER, "WARNING") as logs:
            self.assertEqual(self.post(other, acme_headers(other)).status_code, 401)
        self.assertIn("another Acme workspace", "\n".join(logs.output))
        self.acme.invalidate_recordset()
        self.assertEqual(self.acme.signature_failure_count, 1)
        self.assertFalse(self.events())
        self.acme.acme_workspace_id = False  # no workspace set: any is accepted
        self.assertEqual(self.post(other, acme_headers(other)).status_code, 200)

    def test_previous_secret_is_accepted_during_a_rotation(self):
        self.acme.action_rotate_signing_secret()
        self.acme.signing_secret = "acme_whsec_new"
        first, second = delivery(CONTACT), delivery(PING)
        self.assertEqual(self.post(first, acme_headers(first)).status_code, 200)
        self.assertEqual(self.post(second, acme_headers(second, secret="acme_whsec_new")).status_code, 200)
        self.acme.action_clear_previous_secret()
        third = delivery(dict(PING, id="evt_ping_2"))
        with self.assertLogs(CONNECTOR_LOGGER, "WARNING"):
            self.assertEqual(self.post(third, acme_headers(third)).status_code, 401)
        self.assertEqual(self.events().mapped("idempotency_key"), ["evt_2001", "evt_ping_1"])

    def test_malformed_body_is_stored_as_an_exception(self):
        body = b'{"delivery_id": "dlv_8", "events": [{"id": "evt_3", "type": '
        response = self.post(body, acme_headers(body))
        self.assertEqual(response.status_code, 200, response.text)
        event = self.events()
        self.assertRecordValues(event, [{"state": "exception", "reason": "malformed",
                                         "event_type": "malformed", "payload_raw": body.decode()}])
        # one unreadable event of a batch is an exception; the others are queued
        body = delivery(CONTACT, {"id": "evt_4", "object": {"type": "contact", "id": "c_7"}})
        response = self.post(body, acme_headers(body))
        self.assertEqual(response.json(), {"accepted": 2, "duplicates": 0})
        contact, no_type = self.events()[1:]
        self.assertEqual((contact.state, contact.event_type), ("pending", "acme.contact.updated"))
        self.assertEqual((no_type.state, no_type.reason), ("exception", "malformed"))
        self.assertIn("without id or type", no_type.last_error)

    def test_other_content_types_are_415(self):
        body = delivery(PING)
        for content_type in ("application/json", "text/plain", "application/vnd.acme.webhook"):
            with self.subTest(content_type):
                response = self.post(body, acme_headers(body), content_type=content_type)
                self.assertEqual(response.status_code, 415, response.text)
        self.assertFalse(self.events())
        self.acme.invalidate_recordset()
        self.assertEqual(self.acme.signature_failure_count, 0)

    def test_desk_correction_is_read_by_the_acme_parser(self):
        body = b'{"events": [{"id": "evt_5", "type": "acme.contact.updated", "object": '
        self.assertEqual(self.post(body, acme_headers(body)).status_code, 200)
        event = self.events()
        finance = new_test_user(self.env, "acme_finance", groups="ps_integration_hub.group_hub_finance")
        event.with_user(finance).action_edit_payload_and_retry(
            delivery(dict(CONTACT, id="evt_5")).decode())
        self.assertRecordValues(event, [{"state": "pending", "event_type": "acme.contact.updated",
                                         "external_id": "c_1042", "ordering_key": "contact:c_1042"}])

    # ------------------------------------------------------------ its event type, shipped as data

    def test_its_event_type_is_processed_by_its_handler(self):
        """The addon's event type (data) and handler (one model) process Acme contacts; the hub's
        code names neither."""
        event_type = self.env.ref("ps_hub_test_vendor.event_type_acme_contact_updated")
        self.assertIn(self.acme, event_type.activation_ids.filtered("enabled").connector_id,
                      "a new Acme connector runs it (safe on a sandbox)")
        renamed = dict(CONTACT, id="evt_2002", object=dict(CONTACT["object"], email="ada@lovelace.example"))
        body = delivery(PING, CONTACT, renamed)
        self.assertEqual(self.post(body, acme_headers(body)).status_code, 200)
        ping, contact, again = self.events()
        self.assertEqual((contact.event_type_id, again.event_type_id), (event_type, event_type))
        Engine = self.env["ps.hub.engine"]
        self.assertEqual(Engine._hub_claim(10, "acme-worker"), (ping | contact | again).ids,
                         "the second change of the contact comes with the first")
        Engine._hub_process_claimed("acme-worker")
        self.assertEqual((ping.state, ping.reason), ("ignored", "no_handler"))
        self.assertEqual((contact.state, again.state), ("done", "done"))
        partner = contact._hub_record()
        self.assertEqual((partner, again._hub_record()), (partner, partner))
        self.assertEqual(partner.email, "ada@lovelace.example", "the later change is applied last")
        self.assertEqual(again.ctx_customer, "ada@lovelace.example")
        self.assertEqual(contact._hub_linkable_models(), {"res.partner": "contact"})


@tagged("post_install", "-at_install")
class TestAcmeServices(TransactionCase):
    def test_documented_example(self):
        body = (b'{"delivery_id":"dlv_1","workspace_id":"ws_4f1c","events":[{"id":"evt_1","type":"acme.ping",'
                b'"created_at":1763632800}]}')
        expected = "v1=06511cde6b5a2bab17ebefc0878ce6a2ae4e77533f74743f21217c8dc2f970e4"
        self.assertEqual(acme.sign(SECRET, 1763632800, body), expected)
        headers = {"X-Acme-Timestamp": "1763632800", "X-Acme-Signature": expected}
        acme.verify([SECRET], body, headers, now=1763632800 + 299)
        with self.assertRaises(SignatureError):
            acme.verify([SECRET], body, headers, now=1763632800 + 301)

    def test_the_hub_refuses_a_system_it_was_not_taught(self):
        """Without the addon's overrides an Acme delivery would be refused, not trusted."""
        with secret_key_patcher():
            connector = self.env["ps.hub.connector"].create({
                "name": "Acme", "system": "acme", "signing_secret": SECRET, "auth_type": "none"})
            body = delivery(PING)
            request = SimpleNamespace(method="POST", url="http://localhost/ps_hub/in/x", query_string=b"",
                                      headers=acme_headers(body))
            with self.assertRaisesRegex(SignatureError, "no signature scheme"):
                PsHubConnector._hub_verify_signature(connector, request, "x", body)
            connector._hub_verify_signature(request, "x", body)  # the addon's override accepts it
        with self.assertRaises(NotImplementedError):
            PsHubConnector._hub_parser(connector)
        self.assertEqual(PsHubConnector._hub_content_types(connector), ("application/json",))
        self.assertEqual(connector._hub_content_types(), acme.CONTENT_TYPES)

    def test_the_route_reads_the_workspace_with_the_connector(self):
        """The route's one connector query fetches the field the Acme check reads."""
        with secret_key_patcher():
            connector = self.env["ps.hub.connector"].create({
                "name": "Acme", "system": "acme", "signing_secret": SECRET, "acme_workspace_id": "ws_1"})
        token = connector.sudo().inbound_token
        self.env.invalidate_all()
        with self.assertQueryCount(1):
            found = self.env["ps.hub.connector"]._hub_find_by_token(token)
            self.assertEqual((found.system, found.acme_workspace_id, found.signature_tolerance),
                             ("acme", "ws_1", 300))
