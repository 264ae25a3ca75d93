"""Seeded fuzzing of the inbound route, through HTTP, for every system.

Thousands of requests nobody wrote by hand: mutated bodies (random bytes, NUL, NaN,
1e400, numbers where strings belong, JSON nested far too deep, truncations, bit
flips), mutated headers (forged, stale, non-ASCII, 400-digit timestamps, NUL) and
content types. Whatever comes, the route never answers 5xx; what is not authentic is
refused with a 4xx and stores nothing; what is authentic is acknowledged and stored,
malformed or not, the unreadable bodies losslessly. Deliveries are signed with the
vendors' own packages (ps_hub_fakes.signing), never with the product's signer.

A failure prints the seed and the request number: PS_HUB_FUZZ_SEED and
PS_HUB_FUZZ_REQUESTS replay or widen a run.
"""

import json
import os
import random
import time
from dataclasses import dataclass

from odoo.tests import HttpCase, tagged
from odoo.tools import SQL, mute_logger

from ps_hub_fakes import FakeSalesforce, load_fixture, load_json
from ps_hub_fakes.signing import bamboohr_headers, hubspot_headers, standard_headers, stripe_headers

from ..services import parsers
from .common import HubCaseMixin

SEED = int(os.environ.get("PS_HUB_FUZZ_SEED", "20261129"))
REQUESTS = int(os.environ.get("PS_HUB_FUZZ_REQUESTS", "1250"))
CONNECTOR_LOGGER = "odoo.addons.ps_integration_hub.models.ps_hub_connector"
PARSERS_LOGGER = "odoo.addons.ps_integration_hub.services.parsers"

SECRETS = {
    "hubspot": "hubspot-client-secret",
    "stripe": "whsec_test_stripe_secret",
    "bamboohr": "bamboo-private-key",
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
SF_ORG = "00D5e000001AbCdEAK"
# raw JSON tokens put where a vendor puts an id, a type, an object or a timestamp
HOSTILE_TOKENS = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e20", "-1e20", "9" * 400, "9" * 5000,
    '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"\\udfff\\ud800"', '"' + "x" * 3000 + '"', "[]", "{}",
    "[1, 2]", '{"a": {"b": []}}', "null", "true", "false", "0", "-1", "1.5", '""', '"   "',
    '"\\t\\n"', '"\\u00e9"', '"\\ud83d\\ude00"', '"\u00e9\u2603"', '{"\\u0000": 1}', "[" * 70 + "]" * 70,
    "[" * 900 + "]" * 900, '"deal.creation"', '"evt_x"', "12345",
]
KEY_PATHS = {
    "hubspot": [(0, "eventId"), (0, "subscriptionType"), (0, "objectId"), (0, "portalId"), (0, "occurredAt")],
    "stripe": [("id",), ("type",), ("data",), ("data", "object"), ("data", "object", "id"), ("created",)],
    "bamboohr": [("type",), ("data",), ("data", "employeeId")],
    "standard": [("type",), ("data",), ("data", "id")],
}
GOOD_TYPES = {"salesforce": "text/xml; charset=utf-8"}
BAD_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz",
             "application/jsonp", "", "application/xml", "json", "*/*"]
SIGNED_MODES = ("signed", "signed_nul_header", "duplicate")
FORGED_MODES = ("unsigned", "wrong_secret", "tampered", "stale", "future", "non_ascii",
                "huge_timestamp", "garbage_timestamp", "empty_signature")


@dataclass
class Case:
    connector: object
    body: bytes
    headers: dict
    content_type: str | None
    mode: str
    label: str
    expect: str  # "stored", "refused" (4xx, nothing stored), "unsupported" (415) or "either"
    msg_id: str | None = None


@tagged("post_install", "-at_install")
class TestInboundFuzz(HubCaseMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.hubspot_event = load_json("hubspot/webhook_deal_closedwon.json")[0]
        cls.stripe_event = json.loads(load_fixture("stripe/invoice_paid.json"))
        cls.bamboo_event = load_json("bamboohr/webhook_employee_updated.json")

    # ------------------------------------------------------------------ bodies

    def valid_json(self, rng, system, n):
        if system == "hubspot":
            count = rng.choice([1, 1, 1, 2, 5, 30])
            return [dict(self.hubspot_event, eventId=n * 1000 + i, objectId=rng.randrange(1, 50))
                    for i in range(count)]
        if system == "stripe":
            return dict(self.stripe_event, id=f"evt_fuzz_{n}")
        if system == "bamboohr":
            return dict(self.bamboo_event, timestamp=f"fuzz {n}",
                        data=dict(self.bamboo_event["data"], employeeId=str(rng.randrange(1, 50))))
        return {"type": rng.choice(["customer.updated", "invoice.paid"]), "data": {"id": f"c{n}"}}

    def set_raw(self, value, path, token_index):
        """Put a placeholder at ``path`` (created if missing) that becomes a raw JSON token."""
        placeholder = f"__FUZZ_RAW_{token_index}__"
        target = value
        for step in path[:-1]:
            if isinstance(target, list):
                target = target[step % len(target)] if target else target
            elif isinstance(target, dict):
                if not isinstance(target.get(step), (dict, list)):
                    target[step] = {}
                target = target[step]
        if isinstance(target, dict):
            target[path[-1]] = placeholder
        elif isinstance(target, list) and target:
            target[path[-1] % len(target)] = placeholder
        return f'"{placeholder}"', HOSTILE_TOKENS[token_index]

    def random_path(self, rng, value):
        paths, stack = [], [(value, ())]
        while stack:
            item, path = stack.pop()
            children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
            for key, child in children:
                paths.append((*path, key))
                stack.append((child, (*path, key)))
        return rng.choice(paths) if paths else None

    def json_body(self, rng, system, n):
        value = self.valid_json(rng, system, n)
        kind = rng.choices(["valid", "hostile_field", "hostile_fields", "byte_mutation", "odd_document"],
                           [35, 30, 10, 15, 10])[0]
        if kind in ("hostile_field", "hostile_fields"):
            replacements = []
            for _ in range(1 if kind == "hostile_field" else rng.randint(2, 4)):
                path = rng.choice(KEY_PATHS[system]) if rng.random() < 0.6 else self.random_path(rng, value)
                if path:
                    replacements.append(self.set_raw(value, path, rng.randrange(len(HOSTILE_TOKENS))))
            text = json.dumps(value)
            for placeholder, token in replacements:
                text = text.replace(placeholder, token)
            return text.encode(), kind
        body = json.dumps(value).encode()
        if kind == "byte_mutation":
            return self.mutate_bytes(rng, body), kind
        if kind == "odd_document":
            return rng.choice([
                b"", b" ", b"null", b"1", b'"text"', b"[]", b"{}", b"[1, 2, 3]", b"\xef\xbb\xbf" + body,
                b"\x00" + body, body + b"\x00", body + b" trailing", body.replace(b'"', b"'"),
                b"[" * 100_000 + b"]" * 100_000 if rng.random() < 0.1 else b"[" * 2000 + b"]" * 2000,
                json.dumps(value, ensure_ascii=False).encode("utf-16"),
            ]), kind
        return body, kind

    def mutate_bytes(self, rng, body):
        how = rng.choice(["random", "truncate", "flip", "insert", "nul"])
        if how == "random" or not body:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
        data = bytearray(body)
        if how == "truncate":
            return bytes(data[:rng.randrange(len(data))])
        if how == "flip":
            for _ in range(rng.randint(1, 5)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return bytes(data)
        if how == "insert":
            at = rng.randrange(len(data))
            return bytes(data[:at]) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + bytes(data[at:])
        at = rng.randrange(len(data))
        return bytes(data[:at]) + b"\x00" + bytes(data[at:])

    # ------------------------------------------------------------------ headers

    def sign(self, system, body, msg_id, secret=None, timestamp=None):
        secret = secret or SECRETS[system]
        if system == "hubspot":
            return hubspot_headers(secret, self.hubspot_url, body, None if timestamp is None else timestamp * 1000)
        if system == "stripe":
            return stripe_headers(secret, body, timestamp)
        if system == "bamboohr":
            return bamboohr_headers(secret, body, timestamp)
        return standard_headers(secret, msg_id, body, timestamp)

    def forge(self, rng, system, body, msg_id, mode):
        now = int(time.time())
        if mode == "unsigned":
            return {"webhook-id": msg_id} if system == "standard" and rng.random() < 0.5 else {}
        if mode == "wrong_secret":
            secret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY" if system == "standard" else "guess"
            return self.sign(system, body, msg_id, secret=secret)
        if mode == "tampered":
            return self.sign(system, body + b" ", msg_id)
        if mode in ("stale", "future"):
            return self.sign(system, body, msg_id, timestamp=now + (-1 if mode == "stale" else 1) * 400)
        headers = self.sign(system, body, msg_id)
        sig_header, ts_header = {
            "hubspot": ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"),
            "stripe": ("Stripe-Signature", None),
            "bamboohr": ("X-BambooHR-Signature", "X-BambooHR-Timestamp"),
            "standard": ("webhook-signature", "webhook-timestamp"),
        }[system]
        if mode == "non_ascii":
            odd = "\u00e9" + "".join(rng.choice("\u00e9\u00ff\u00c9\u00a0\u00b5") for _ in range(rng.randint(0, 63)))
            headers[sig_header] = rng.choice([odd, f"v1,{odd}", f"t={now},v1={odd}"])
        elif mode in ("huge_timestamp", "garbage_timestamp"):
            value = "9" * 400 if mode == "huge_timestamp" else rng.choice(
                ["", "abc", "-1", "1e3", "12 ", "1_700_000_000", "0x10", "\u00b2", "12.5", str(now) + "\u00e9"])
            if ts_header:
                headers[ts_header] = value
            else:
                headers[sig_header] = headers[sig_header].replace(f"t={now}", f"t={value}", 1)
        else:  # empty_signature
            headers[sig_header] = ""
        return headers

    # ------------------------------------------------------------------ cases

    def salesforce_case(self, rng, n):
        notes = [{"notification_id": f"04l5e00000F{n:05d}{i}AAF", "opportunity_id": f"0065e00000G{n:05d}{i}AV",
                  "account_id": "0015e00000QrStUAAV"} for i in range(rng.choice([1, 1, 2, 5]))]
        mode = rng.choices(["valid", "odd_values", "wrong_org", "no_org", "garbage", "flipped"],
                           [30, 25, 15, 5, 15, 10])[0]
        if mode == "odd_values":  # unique per request: a 200 must store something new
            note = rng.choice(notes)
            key = rng.choice(["notification_id", "opportunity_id", "name", "amount", "close_date"])
            note[key] = rng.choice(["x" * 3000, "", f"\u00e9\u2603\U0001f600{n}", f"<&>{n}", f"  {n}",
                                    f"1e400{n}", f"NaN{n}"])
        org = {"wrong_org": "00D000000000BAD", "no_org": ""}.get(mode, SF_ORG)
        body = FakeSalesforce.outbound_message(notes, org_id=org)
        if mode == "no_org":
            body = body.replace(b"<OrganizationId></OrganizationId>", b"")
        expect = {"valid": "stored", "odd_values": "stored", "flipped": "either"}.get(mode, "refused")
        if mode == "garbage":
            body = rng.choice([self.mutate_bytes(rng, b""), body[:rng.randrange(len(body) // 2)],
                               b"<a>\x00</a>", b"<a>" * 300 + b"</a>" * 300])
        elif mode == "flipped":
            body = self.mutate_bytes(rng, body)
        return Case(self.salesforce, body, {}, GOOD_TYPES["salesforce"], mode, mode, expect)

    def make_case(self, rng, n):
        system = rng.choice(["hubspot", "salesforce", "stripe", "bamboohr", "standard"])
        if system == "salesforce":
            case = self.salesforce_case(rng, n)
        else:
            connector = getattr(self, system)
            weights = [40, 5, 5] + [50 / len(FORGED_MODES)] * len(FORGED_MODES)
            mode = rng.choices(SIGNED_MODES + FORGED_MODES, weights)[0]
            if mode == "duplicate" and self.accepted_bodies.get(system):
                body, msg_id = rng.choice(self.accepted_bodies[system])
                kind = "redelivery"
            else:
                mode = "signed" if mode == "duplicate" else mode
                body, kind = self.json_body(rng, system, n)
                msg_id = f"msg_fuzz_{n}" if rng.random() < 0.9 else rng.choice(
                    [f"{'m' * 3000}{n}", f"\u00e9t\u00e9{n}", f"m\x00{n}"])  # unique: a new message
            if mode in SIGNED_MODES:
                headers = self.sign(system, body, msg_id)
                if mode == "signed_nul_header":
                    headers.update({"User-Agent": "fuzz\x00agent", "X-Request-Id": "r\x00\u00e9"})
            else:
                headers = self.forge(rng, system, body, msg_id, mode)
            expect = "stored" if mode in SIGNED_MODES else "refused"
            content_type = rng.choice(["application/json", "application/json; charset=utf-8", "Application/JSON"])
            case = Case(connector, body, headers, content_type, mode, f"{mode}/{kind}", expect, msg_id)
        if rng.random() < 0.08:
            case.content_type = rng.choice(BAD_TYPES)
            case.expect = "unsupported"
        return case

    # ------------------------------------------------------------------ run

    def stored_count(self, connector):
        self.env.cr.execute(SQL("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s", connector.id))
        return self.env.cr.fetchone()[0]

    def test_fuzz_inbound_route(self):
        rng = random.Random(SEED)
        self.accepted_bodies = {}
        self.hubspot_url = self.hubspot.inbound_url  # the URL HubSpot is given and signs
        tokens = {c.id: c.sudo().inbound_token for c in (self.hubspot, self.salesforce, self.stripe,
                                                         self.bamboohr, self.standard)}
        whole_body_malformed = []  # (connector, key, body) of signed bodies that are not JSON at all
        outcomes = {}
        started = time.monotonic()
        with mute_logger(CONNECTOR_LOGGER, "odoo.http"), self.assertNoLogs(PARSERS_LOGGER, "ERROR"):
            for n in range(REQUESTS):
                case = self.make_case(rng, n)
                where = f"seed {SEED} request {n} {case.connector.system} {case.label} body={case.body[:80]!r}"
                headers = dict(case.headers)
                if case.content_type is not None:
                    headers["Content-Type"] = case.content_type
                before = self.stored_count(case.connector)
                response = self.url_open(f"/ps_hub/in/{tokens[case.connector.id]}", data=case.body,
                                         headers=headers, method="POST", allow_redirects=False)
                stored = self.stored_count(case.connector) - before
                status = response.status_code
                outcomes[(case.connector.system, case.expect, status)] = \
                    outcomes.get((case.connector.system, case.expect, status), 0) + 1
                self.assertLess(status, 500, f"{where}: {response.text[:300]}")
                if case.expect == "unsupported":
                    self.assertEqual((status, stored), (415, 0), where)
                elif case.expect == "refused":
                    self.assertEqual((status, stored), (401, 0), where)
                elif case.expect == "either":  # a bit flip may or may not break the XML
                    self.assertIn(status, (200, 401), where)
                    self.assertEqual(stored > 0, status == 200, where)
                else:
                    self.assertEqual(status, 200, f"{where}: {response.text[:300]}")
                    if case.connector.system == "salesforce":
                        self.assertIn(b"<Ack>true</Ack>", response.content, where)
                        self.assertGreater(stored, 0, where)
                        continue
                    answer = response.json()
                    self.assertEqual(stored, answer["accepted"], where)
                    self.assertGreaterEqual(answer["accepted"] + answer["duplicates"], 1, where)
                    if case.mode == "duplicate":
                        self.assertEqual(answer["accepted"], 0, where)
                    else:
                        self.accepted_bodies.setdefault(case.connector.system, []).append((case.body, case.msg_id))
                    if not self.is_json(case.body):
                        whole_body_malformed.append((case.connector, case.body))
        elapsed = time.monotonic() - started
        # unreadable authentic bodies are kept, byte for byte, as malformed exceptions
        kept = {}
        for event in self.env["ps.hub.event"].search([("event_type", "=", "malformed")]):
            kept.setdefault((event.connector_id.id, parsers.raw_bytes(event.payload_raw or "")), event)
        for connector, body in whole_body_malformed:
            event = kept.get((connector.id, body))
            self.assertTrue(event, f"{connector.system}: {body[:60]!r} is not kept as it came")
            self.assertEqual((event.state, event.reason), ("exception", "malformed"))
        events = self.env["ps.hub.event"].search([])
        self.assertFalse(events.filtered(lambda e: (e.last_error or "").startswith("parser failure")),
                         "every parser handles what it was sent without the safety net")
        self.assertFalse(events.filtered(lambda e: e.state == "exception" and e.reason != "malformed"))
        stats = {system: {} for system in ("hubspot", "salesforce", "stripe", "bamboohr", "standard")}
        for (system, expect, status), count in sorted(outcomes.items()):
            stats[system][f"{expect}->{status}"] = count
        # the fuzzing must reach each outcome of each system, or it proves little
        for system, seen in stats.items():
            self.assertTrue(any(k.startswith("stored->200") for k in seen), (system, seen))
            self.assertTrue(any(k.startswith("refused->401") for k in seen), (system, seen))
            self.assertTrue(any(k.startswith("unsupported->415") for k in seen), (system, seen))
        self.assertGreaterEqual(len(whole_body_malformed), 30, "enough unreadable bodies were signed and kept")
        self.assertGreaterEqual(len(events.filtered(lambda e: e.event_type == "malformed")), 100)
        self._logger.info("fuzz: %s requests in %.1f s (seed %s), %s unreadable bodies kept; %s",
                          REQUESTS, elapsed, SEED, len(whole_body_malformed), stats)

    @staticmethod
    def is_json(body):
        try:
            json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            return False
        return True
