"""An Odoo server killed while its cron worker is in a batch loses nothing and duplicates nothing.

100 closed-won deals arrive as signed HubSpot webhooks on the real inbound route of a
real ``odoo server`` (one cron thread runs the two worker crons). While a batch is in
flight the server gets SIGKILL; the batch's transaction dies with it, leaving its
events in ``processing``. A second server reclaims them once their lease (2 s here)
has passed and finishes the queue: exactly one confirmed sale order per deal.
"""

import json
import re
import signal
import time

import requests

from ps_hub_fakes.signing import hubspot_headers

N_EVENTS = 100
LEASE = 2
BATCH = 10
PARAMS = {"ps_integration_hub.lease_seconds": LEASE, "ps_integration_hub.batch_size": BATCH}
SERVER_ARGS = ("--workers=0", "--max-cron-threads=1", "--log-level=info")


def _counts(db, cid) -> dict:
    return dict(db.all("SELECT state, count(*) FROM ps_hub_event WHERE connector_id = %s GROUP BY state", [cid]))


def _post_signed(url: str, secret: str, events: list) -> dict:
    body = json.dumps(events).encode()
    headers = {"Content-Type": "application/json", **hubspot_headers(secret, url, body)}
    response = requests.post(url, data=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def _kill_mid_batch(db, server, cid, timeout: float = 90) -> list[int]:
    """SIGKILL the server while it has a claimed batch; the ids left in processing."""
    deadline = time.monotonic() + timeout
    last_wake = 0.0
    while time.monotonic() < deadline:
        counts = _counts(db, cid)
        if 0 < counts.get("done", 0) < N_EVENTS and counts.get("processing", 0):
            server.kill(signal.SIGKILL)
            break
        if counts.get("done", 0) >= N_EVENTS:
            raise AssertionError("the server finished the queue before it could be killed")
        if time.monotonic() - last_wake > 3:
            db.wake_crons()  # the cron thread may have started listening after the webhooks' NOTIFY
            last_wake = time.monotonic()
        time.sleep(0.05)
    else:
        server.kill(signal.SIGKILL)
        raise AssertionError(f"no batch in flight after {timeout}s: {_counts(db, cid)}\n{server.log_tail()}")
    # the killed server's connections go away, and with them its transaction and row locks
    deadline = time.monotonic() + 30
    while db.other_backends() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not db.other_backends(), "the killed server's database connections are still open"
    return [row[0] for row in db.all(
        "SELECT id FROM ps_hub_event WHERE connector_id = %s AND state = 'processing' ORDER BY id", [cid])]


def test_killed_server_loses_and_duplicates_nothing(
    db, odoo_server, fake_hubspot, hub_connector, add_deals, closed_won,
    event_rows, assert_one_order_per_deal,
):
    fake_hubspot.latency = 0.05  # three HubSpot calls an event: a batch of 10 takes a few seconds
    deal_ids = add_deals(fake_hubspot, N_EVENTS)
    connector = hub_connector(fake_hubspot.base_url, "HubSpot worker crash")
    cid = connector["id"]
    previous = dict(db.all("SELECT key, value FROM ir_config_parameter WHERE key IN %s", [tuple(PARAMS)]))
    for key, value in PARAMS.items():  # read by the servers started below
        db.run("INSERT INTO ir_config_parameter (key, value, create_uid, write_uid, create_date, write_date) "
               "VALUES (%s, %s, 1, 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') "
               "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [key, str(value)])
    try:
        started = time.monotonic()
        inflight, done_before = [], {}
        for attempt in range(3):
            server = odoo_server(f"proc-worker-crash-{attempt + 1}.log", *SERVER_ARGS).start()
            if attempt == 0:
                # ten signed deliveries of ten events on the real route
                url = f"{server.url}/ps_hub/in/{connector['token']}"
                answers = [
                    _post_signed(url, connector["signing_secret"], [
                        closed_won(7_000_000 + i, deal_id) for i, deal_id in enumerate(deal_ids[s:s + 10], start=s)
                    ])
                    for s in range(0, N_EVENTS, 10)
                ]
                assert answers == [{"accepted": 10, "duplicates": 0}] * 10
            inflight = _kill_mid_batch(db, server, cid)
            done_before = dict(db.all(
                "SELECT id, attempts FROM ps_hub_event WHERE connector_id = %s AND state = 'done'", [cid]))
            if inflight:
                break
            # killed between two batches (a window of milliseconds): try again
        assert inflight, "could not kill the server while a batch was in flight"
        killed_at = time.monotonic()
        assert len(inflight) <= BATCH
        assert set(done_before.values()) == {1}

        time.sleep(LEASE + 1)  # the dead worker's lease runs out
        server = odoo_server("proc-worker-crash-restart.log", *SERVER_ARGS).start()
        deadline = time.monotonic() + 120
        last_wake = 0.0
        while time.monotonic() < deadline:
            counts = _counts(db, cid)
            if counts.get("done", 0) == N_EVENTS or not any(
                    counts.get(s) for s in ("pending", "processing", "retry")):
                break
            if time.monotonic() - last_wake > 3:
                db.wake_crons()  # as the crons' 1-minute interval would, sooner
                last_wake = time.monotonic()
            time.sleep(0.2)
        recovered_in = time.monotonic() - killed_at
        server.kill()
        print(f"\nkilled with {len(done_before)} done and {len(inflight)} in flight; "
              f"recovered in {recovered_in:.1f}s, total {time.monotonic() - started:.1f}s")
    finally:
        for key in PARAMS:
            if key in previous:
                db.run("UPDATE ir_config_parameter SET value = %s WHERE key = %s", [previous[key], key])
            else:
                db.run("DELETE FROM ir_config_parameter WHERE key = %s", [key])

    rows = event_rows(db, cid)
    assert len(rows) == N_EVENTS
    not_done = [r for r in rows if r[1] != "done"]
    assert not not_done, f"{len(not_done)} event(s) not done, e.g. {not_done[:3]}\n{server.log_tail()}"

    # the batch killed in flight was reclaimed (worker_lost) and run again; nothing else ran twice
    attempts = {r[0]: r[2] for r in rows}
    assert {i: attempts[i] for i in inflight} == dict.fromkeys(inflight, 2)
    assert {a for i, a in attempts.items() if i not in inflight} == {1}
    reclaimed = [int(n) for n in re.findall(r"reclaimed (\d+) event\(s\) of a lost worker", server.log())]
    assert sum(reclaimed) == len(inflight), reclaimed

    # exactly one confirmed order per deal, bound to it, and the event points to it
    assert_one_order_per_deal(db, cid, rows, deal_ids)
