"""Two worker processes drain one queue: every event is processed exactly once.

200 HubSpot closed-won events are queued for a connector whose API is a FakeHubSpot
served by this test. Two Python processes, each with its own Odoo registry and
cursor, run the cron worker ``_cron_process_events(limit=10)`` at the same moment.
Each process records the ids its ``_hub_claim`` won.
"""

import json
import subprocess
import time
from collections import Counter

N_EVENTS = 200
BATCH = 10

WORKER = """
import sys

Event = type(env["ps.hub.engine"])
claim = Event._hub_claim
won = []


def recording_claim(self, limit, token):
    ids = claim(self, limit, token)
    won.extend(ids)
    return ids


Event._hub_claim = recording_claim
print("READY", flush=True)
sys.stdin.readline()  # the test starts both workers at once
runs = 0
while True:
    before = len(won)
    env["ps.hub.engine"]._cron_process_events(limit=%(batch)d)
    runs += 1
    if len(won) == before:
        break
emit({"ids": won, "runs": runs})
"""


def test_two_workers_process_each_event_once(
    db, odoo_script, odoo_process, fake_hubspot, hub_connector, add_deals, closed_won, tmp_path,
    event_rows, assert_one_order_per_deal, wait_ready,
):
    deal_ids = add_deals(fake_hubspot, N_EVENTS)
    connector = hub_connector(fake_hubspot.base_url, "HubSpot concurrent workers")
    cid = connector["id"]
    events = [closed_won(9_000_000 + i, deal_id) for i, deal_id in enumerate(deal_ids)]
    enqueued = odoo_script(f"""
        from odoo.addons.ps_integration_hub.services import parsers
        connector = env["ps.hub.connector"].browse({cid})
        events = json.loads({json.dumps(events)!r})
        new_ids = []
        for start in range(0, len(events), 100):  # HubSpot sends up to 100 events a request
            body = json.dumps(events[start:start + 100]).encode()
            ids, duplicates = env["ps.hub.event"]._hub_enqueue(connector, parsers.parse_delivery("hubspot", body))
            assert duplicates == 0, duplicates
            new_ids += ids
        emit(new_ids)
    """)
    assert len(enqueued) == N_EVENTS
    assert db.one("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s AND state = 'pending'", [cid]) == N_EVENTS

    workers = []
    try:
        for n in (1, 2):
            log = (tmp_path / f"worker{n}.log").open("w+")
            workers.append((odoo_process(WORKER % {"batch": BATCH}, stdin=subprocess.PIPE, stderr=log), log))
        for proc, log in workers:
            wait_ready(proc, log, timeout=90)
        started = time.monotonic()
        for proc, _log in workers:  # both go
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        results = []
        for proc, log in workers:
            stdout, _err = proc.communicate(timeout=150)
            log.seek(0)
            assert proc.returncode == 0, f"worker failed:\n{log.read()[-4000:]}"
            lines = [line for line in stdout.splitlines() if line.startswith("@@PS_HUB_RESULT@@ ")]
            assert len(lines) == 1, stdout
            results.append(json.loads(lines[0].split(" ", 1)[1]))
        elapsed = time.monotonic() - started
    finally:
        for proc, log in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()

    won1, won2 = (set(r["ids"]) for r in results)
    print(f"\n{N_EVENTS} events by 2 workers in {elapsed:.1f}s: {len(won1)} + {len(won2)}")
    # each worker claimed each of its events once, no event was claimed by both
    assert len(won1) == len(results[0]["ids"]) and len(won2) == len(results[1]["ids"])
    assert not won1 & won2, f"claimed by both workers: {sorted(won1 & won2)}"
    assert won1 | won2 == set(enqueued)
    assert won1 and won2, "one worker did all the work: the test did not run them concurrently"

    rows = event_rows(db, cid)
    assert len(rows) == N_EVENTS
    not_done = [r for r in rows if r[1] != "done"]
    assert not not_done, f"{len(not_done)} event(s) not done, e.g. {not_done[:3]}"
    assert Counter(r[2] for r in rows) == {1: N_EVENTS}, "every event ran exactly once"

    # one confirmed order per deal, bound to it, and the event points to it
    assert_one_order_per_deal(db, cid, rows, deal_ids)

    # and HubSpot was read once per deal: no event was processed twice, even in a rolled back batch
    deal_reads = Counter(req.path.rsplit("/", 1)[1] for req in fake_hubspot.calls("GET", "/crm/v3/objects/deals/"))
    assert deal_reads == dict.fromkeys(deal_ids, 1)
