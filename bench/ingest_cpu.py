"""Odoo-process CPU per HubSpot delivery through the inbound route, in one process.

Run inside ``odoo shell`` on a database where ps_integration_hub is installed (for
instance the one bench/ingest.py made)::

    python3 -m odoo shell -c .run/bench.conf -d ps_hub_bench --log-level=error < bench/ingest_cpu.py

It posts deliveries to the real route through Odoo's WSGI application (no socket, no
load generator: what is left is the server's own work) and prints the CPU time of this
process per request (``time.process_time``, so the other processes of a shared machine
count less than in wall time) and the SQL queries per request, for ``GET /web/health``
(Odoo's own floor: the same dispatch, no work), single-event deliveries and 100-event
deliveries. The hub's own cost is the difference with /web/health; PostgreSQL's work is
not in these figures (see the queries). Compare two checkouts by running it against
each, alternately, on the same machine.
"""

import base64
import hashlib
import hmac
import json
import statistics
import time

from werkzeug.test import Client

import odoo.sql_db
from odoo.http import root

ROUNDS, PER_ROUND = 5, 300
SECRET = "bench-ingest-cpu-secret"

connector = env["ps.hub.connector"].create({  # noqa: F821 - odoo shell's env
    "name": "bench ingest cpu", "system": "hubspot", "signing_secret": SECRET, "auth_type": "none",
})
token = connector.sudo().inbound_token
env.cr.commit()  # noqa: F821
client = Client(root)
path = f"/ps_hub/in/{token}"
url = f"http://localhost{path}"  # what werkzeug's client sends and Odoo reconstructs
run_id = int(time.time())


def post(event_id: int, n: int = 1) -> None:
    body = json.dumps([{
        "eventId": event_id * 100 + k, "subscriptionType": "deal.propertyChange", "portalId": 62515,
        "objectId": 1000 + (event_id + k) % 5000, "propertyName": "dealstage", "propertyValue": "closedwon",
        "occurredAt": int(time.time() * 1000),
    } for k in range(n)]).encode()
    ts = int(time.time() * 1000)
    signature = base64.b64encode(hmac.new(
        SECRET.encode(), b"POST" + url.encode() + body + str(ts).encode(), hashlib.sha256).digest()).decode()
    answer = client.post(path, data=body, headers={
        "Content-Type": "application/json", "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": str(ts)})
    assert answer.status_code == 200, (answer.status_code, answer.get_data())
    assert json.loads(answer.get_data())["accepted"] == n, answer.get_data()


def health(_event_id: int) -> None:
    answer = client.get("/web/health")
    assert answer.status_code == 200, (answer.status_code, answer.get_data())


def measure(label: str, call, rounds: int, per_round: int, base: int) -> None:
    cpu_ms = []
    for rnd in range(rounds):
        start = time.process_time()
        for i in range(per_round):
            call(base + rnd * per_round + i)
        cpu_ms.append((time.process_time() - start) / per_round * 1000)
    queries = odoo.sql_db.sql_counter
    for i in range(50):
        call(base + 900_000 + i)
    queries = (odoo.sql_db.sql_counter - queries) / 50
    print(f"[bench] {label}: CPU ms per request, {rounds} rounds of {per_round}: "
          f"{[round(v, 3) for v in cpu_ms]} median {statistics.median(cpu_ms):.3f}; "
          f"SQL queries per request: {queries:.2f}")


measure("GET /web/health", health, ROUNDS, PER_ROUND, 0)
measure("single-event delivery", post, ROUNDS, PER_ROUND, run_id * 10**7)
measure("100-event delivery", lambda i: post(i, 100), ROUNDS, PER_ROUND // 10, run_id * 10**7 + 5 * 10**6)
