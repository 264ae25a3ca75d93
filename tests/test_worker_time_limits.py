"""A slow vendor under a backlog: runs end inside Odoo's time limits, no worker is killed.

200 closed-won deals arrive as signed HubSpot webhooks on the real route of an Odoo server
in prefork mode with Odoo's default limits (limit_time_real 120 s, limit_time_cpu 60 s),
two HTTP workers and four cron workers running four worker crons. The fake HubSpot answers
each call in 2 s, so a deal (three calls) takes over 6 s and a batch of 50 would take five
minutes. Before runs were bounded by time, a worker took its batch past the limits and was
killed: every event of the batch charged an attempt, put back by the reclaim with no wait,
and killed again. Now every deal ends with exactly one order at its first attempt, none is
dead-lettered, and the server log shows no worker killed or over a limit.

Nothing here wakes the cron runners: when a run ends with work left, the product does.
"""

import json
import re
import time

import requests

from ps_hub_fakes.signing import hubspot_headers

N_DEALS = 200
LATENCY = 2.0
EXTRA_WORKER_CRONS = 2  # with the two the module installs: one for each cron worker
SERVER_ARGS = (
    "--workers=2", "--max-cron-threads=4", "--limit-time-real=120", "--limit-time-cpu=60",
    "--limit-time-real-cron=-1", "--log-level=info",
)
DEADLINE = 900  # seconds for the whole backlog; it takes about 6 minutes on 2 cores
KILLED = re.compile(r"timeout after \d+s|virtual real time limit|CPU time limit|Worker \w+ \(\d+\) Exception")


def _counts(db, cid) -> dict:
    return dict(db.all("SELECT state, count(*) FROM ps_hub_event WHERE connector_id = %s GROUP BY state", [cid]))


def test_slow_vendor_backlog_stays_inside_odoo_limits(
    db, odoo_script, odoo_server, fake_hubspot, hub_connector, add_deals, closed_won,
    event_rows, assert_one_order_per_deal,
):
    fake_hubspot.latency = LATENCY
    deal_ids = add_deals(fake_hubspot, N_DEALS)
    connector = hub_connector(fake_hubspot.base_url, "HubSpot slow vendor")
    cid = connector["id"]
    extra_crons = odoo_script(f"""
        from odoo import fields
        worker = env.ref("ps_integration_hub.ir_cron_process_events_1")
        copies = env["ir.cron"]
        for n in range({EXTRA_WORKER_CRONS}):
            copies |= worker.copy({{"name": "Integration Hub: event worker (time limits test %s)" % n,
                                    "nextcall": fields.Datetime.now(), "active": True}})
        emit(copies.ids)
    """)
    try:
        server = odoo_server("proc-time-limits.log", *SERVER_ARGS).start(timeout=120)
        url = f"{server.url}/ps_hub/in/{connector['token']}"
        started = time.monotonic()
        for start in range(0, N_DEALS, 100):  # HubSpot sends up to 100 events a request
            body = json.dumps([closed_won(8_000_000 + i, deal_ids[i])
                               for i in range(start, min(start + 100, N_DEALS))]).encode()
            headers = {"Content-Type": "application/json", **hubspot_headers(connector["signing_secret"], url, body)}
            response = requests.post(url, data=body, headers=headers, timeout=60)
            assert response.status_code == 200, response.text
        counts = {}
        while time.monotonic() - started < DEADLINE:
            counts = _counts(db, cid)
            if not any(counts.get(s) for s in ("pending", "processing", "retry")):
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
        server.kill()
    finally:
        odoo_script(f"""
            crons = env["ir.cron"].browse({extra_crons!r}).exists()
            actions = crons.ir_actions_server_id
            crons.unlink()
            actions.exists().unlink()
        """)
    log = server.log()
    given_back = sum(int(n) for n in re.findall(r"(\d+) event\(s\) given back unstarted", log))
    deal_reads = len(fake_hubspot.calls("GET", "/crm/v3/objects/deals/"))
    print(f"\n{N_DEALS} deals at {LATENCY:.0f} s a HubSpot call: {elapsed:.0f} s; states {counts}; "
          f"events given back unstarted: {given_back}; deal reads: {deal_reads}")

    assert counts == {"done": N_DEALS}, f"after {elapsed:.0f}s: {counts}\n{server.log_tail()}"
    killed = [line for line in log.splitlines() if KILLED.search(line)]
    assert not killed, "a worker was killed or over a limit:\n" + "\n".join(killed[:10])
    assert "reclaimed" not in log, "no event was left behind by a worker"

    rows = event_rows(db, cid)
    assert {r[2] for r in rows} == {1}, "each deal was charged one attempt: none was cut or retried"
    assert_one_order_per_deal(db, cid, rows, deal_ids)
