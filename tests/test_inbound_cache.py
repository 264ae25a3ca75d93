"""The inbound route's per-process connector cache, across the worker processes of a prefork server.

Each worker keeps the connector's inbound fields (secrets, limits, active) in its own cache
(``ps.hub.connector._hub_inbound_row``). A change of the connector made elsewhere must reach
every worker at its next request: the write clears Odoo's registry cache, which Odoo signals
through the database at the end of the request or cron job that made it.
"""

import json
import random
from concurrent.futures import ThreadPoolExecutor

import requests

from ps_hub_fakes.signing import hubspot_headers

ROUNDS = 24  # deliveries per check, 4 at a time: both workers take some


def _post(url: str, secret: str, event_id: int) -> int:
    body = json.dumps([{
        "eventId": event_id, "portalId": 62515, "subscriptionType": "company.propertyChange",
        "objectId": 700 + event_id % 7, "propertyName": "name", "propertyValue": f"Acme {event_id}",
    }]).encode()
    headers = {"Content-Type": "application/json", **hubspot_headers(secret, url, body)}
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


def _statuses(url: str, secret: str, first_id: int) -> list[int]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda i: _post(url, secret, first_id + i), range(ROUNDS)))


def _change(odoo_script, cid: int, values: dict) -> None:
    """Write the connector in another process, then signal as Odoo does after a request."""
    odoo_script(f"""
        env["ps.hub.connector"].browse({cid}).write({values!r})
        cr.commit()
        env.registry.signal_changes()
        emit(True)
    """)


def test_every_worker_reads_a_changed_connector(odoo_server, hub_connector, odoo_script, db):
    connector = hub_connector("http://127.0.0.1:9", "proc inbound cache")
    cid, old_secret = connector["id"], connector["signing_secret"]
    server = odoo_server("proc-inbound-cache.log", "--workers=2", "--max-cron-threads=0").start()
    url = f"{server.url}/ps_hub/in/{connector['token']}"
    base = random.randint(1, 10**6) * 1000

    # both workers cache the connector
    assert _statuses(url, old_secret, base) == [200] * ROUNDS
    assert db.one("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s", [cid]) == ROUNDS

    # a new signing secret: every worker verifies against it at once, and refuses the old one
    new_secret = f"rotated-{random.getrandbits(48):x}"
    _change(odoo_script, cid, {"signing_secret": new_secret})
    assert _statuses(url, new_secret, base + 100) == [200] * ROUNDS
    assert _statuses(url, old_secret, base + 200) == [401] * ROUNDS

    # a smaller body limit: taken at once too (413 before anything is read or stored)
    _change(odoo_script, cid, {"max_body_bytes": 64})
    assert _statuses(url, new_secret, base + 300) == [413] * ROUNDS
    _change(odoo_script, cid, {"max_body_bytes": 1_000_000})

    # archived: no worker takes a delivery for it any more
    _change(odoo_script, cid, {"active": False})
    assert _statuses(url, new_secret, base + 400) == [404] * ROUNDS
    assert db.one("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s", [cid]) == 2 * ROUNDS
