"""Outbound push benchmark of ps-hub (Odoo 19): status pushes to a rate-limited HubSpot.

A fake HubSpot (ps_hub_fakes.FakeHubSpot, in this process) enforces a rolling window of
--limit requests per --interval-ms (default 100 per 10 s, HubSpot's TEN_SECONDLY_ROLLING
shape: 429, its documented body, the X-HubSpot-RateLimit-* headers, no Retry-After). One
`odoo shell` process queues the pushes through the outbox (ps.hub.event._hub_enqueue_push,
in one transaction, as a business change would) and then works them with the hub's worker
(`ps.hub.engine._cron_process_events`, committing each batch as the cron does, sleeping
until the next event is due when none is), until every push is done.

Two phases, each its own deals (one push per deal):

a. batch: --pushes status pushes (default 5,000) with the HubSpot push type's batch size of
   100: the batch update endpoint, 100 deals a call, so 50 calls;
b. single: --single pushes (default 1,000) with the type's batch size set to 1: one PATCH per
   push, so that the rate limit binds (1,000 calls at 10/s is 100 s at best) and the 429
   handling shows.

It prints per phase: pushes, requests made (accepted, refused with 429, batch and single),
the busiest 10 s window the fake accepted, how each 429 was handled (its events retried
after the window, the claim's other events given back uncharged), events done, in exception
or dead, the wall time and the throughput: pushes/s, and accepted requests/s against the
limit (requests/s while requests were needed).

    python3 bench/push.py                  # install ps_integration_hub into ps_hub_bench_push, run
    python3 bench/push.py --reuse-db       # keep the database of an earlier run
    python3 bench/push.py --pushes 5000 --single 1000 --limit 100 --interval-ms 10000

Needs Odoo 19.0 importable by python3 and PostgreSQL (user odoo, or PGUSER/PGHOST).
Log of the shell: .run/bench-push.log.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

import _common
import requests
from _common import log
from processing import wait_other_benches

from ps_hub_fakes import FakeHubSpot

CONF = _common.RUN_DIR / "bench_push.conf"
TOKEN = "pat-bench-push"
FIRST_DEAL = 40_000_001

SCRIPT = r"""
import time
PHASES, COUNT, CLAIM = %(phases)r, %(count)d, %(claim)d
BASE_URL, TOKEN, FIRST_DEAL = %(base_url)r, %(token)r, %(first)d
Engine, Event = env['ps.hub.engine'], env['ps.hub.event']
for xmlid in ('ir_cron_process_events_1', 'ir_cron_process_events_2'):
    env.ref('ps_integration_hub.' + xmlid).active = False
env['ir.config_parameter'].set_param('ps_integration_hub.batch_size', CLAIM)
Connector = env['ps.hub.connector'].with_context(active_test=False)
connector = Connector.search([('name', '=', 'bench push')], limit=1)
values = {'base_url': BASE_URL, 'auth_type': 'bearer', 'auth_secret': TOKEN, 'retry_backoff_base': 1,
          'retry_backoff_cap': 60, 'retry_max_attempts': 20, 'timeout': 20, 'environment': 'production'}
if connector:
    for table in ('ps_hub_audit_log', 'ps_hub_event', 'ps_hub_binding'):
        env.cr.execute("DELETE FROM %%s WHERE connector_id = %%%%s" %% table, [connector.id])
    connector.write(values)
else:
    connector = Connector.create(dict(values, name='bench push', system='hubspot'))
count = COUNT
partners = env['res.partner'].search([('name', '=like', 'bench push client %%')], order='id')
if len(partners) < count:
    partners |= env['res.partner'].create([{'name': 'bench push client %%d' %% i}
                                           for i in range(len(partners), count)])
partners = partners[:count]
env['ps.hub.binding']._hub_bind_many([(connector, 'deal', str(FIRST_DEAL + i), p) for i, p in enumerate(partners)])
deal_type = env.ref('ps_integration_hub.event_type_hubspot_deal_push')
env.cr.commit()

def drain():
    runs = 0
    while True:
        Engine._cron_process_events()
        runs += 1
        env.cr.execute('''SELECT count(*), EXTRACT(EPOCH FROM min(next_attempt_at) - (now() AT TIME ZONE 'UTC'))
                            FROM ps_hub_event WHERE connector_id = %%s AND direction = 'out'
                             AND state IN ('pending', 'retry', 'processing')''', [connector.id])
        left, wait = env.cr.fetchone()
        env.cr.commit()
        if not left:
            return runs
        time.sleep(min(max(float(wait or 0), 0.02), 5))

def phase(name, records, batch_size):
    deal_type.batch_size = batch_size
    env.cr.commit()
    t0 = time.time()
    events = Event._hub_enqueue_push(connector, records, 'deal', [
        {'invoice_status': 'paid', 'invoice_number': 'INV/2026/%%05d' %% p.id} for p in records])
    env.cr.commit()
    t1 = time.time()
    runs = drain()
    t2 = time.time()
    env.cr.execute('''SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'exception'),
                             count(*) FILTER (WHERE state = 'dead'), max(attempts), count(*)
                        FROM ps_hub_event WHERE id IN %%s''', [tuple(events.ids)])
    done, exception, dead, max_attempts, total = env.cr.fetchone()
    env.cr.execute('''SELECT count(*) FILTER (WHERE after->>'state' = 'retry' AND after->>'reason' = 'rate_limited'),
                             count(DISTINCT event_id) FILTER (WHERE after->>'state' = 'retry')
                        FROM ps_hub_audit_log WHERE event_id IN %%s AND action = 'process' ''', [tuple(events.ids)])
    retried_429, retried_events = env.cr.fetchone()
    for key, value in (('t0', t0), ('t1', t1), ('t2', t2), ('events', total), ('done', done),
                       ('exception', exception), ('dead', dead), ('max_attempts', max_attempts or 0),
                       ('runs', runs), ('retried_429', retried_429), ('retried_events', retried_events)):
        print('BENCH %%s_%%s=%%s' %% (name, key, value))

for name, offset, size, batch_size in PHASES:
    phase(name, partners[offset:offset + size], batch_size)
deal_type.batch_size = 100
env.cr.commit()
print('BENCH ok=1')
"""


class RecordingHubSpot(FakeHubSpot):
    """FakeHubSpot that notes when each request was answered, how, and with how many inputs."""

    def _load_defaults(self) -> None:
        super()._load_defaults()
        self.answered: list[tuple[float, str, int, int]] = []  # (time, path, status, inputs)

    def _handle(self, handler):
        answer = super()._handle(handler)
        with self._lock:
            req = self.requests[-1]  # one worker: one request at a time
            inputs = len(req.body["inputs"]) if isinstance(req.body, dict) and "inputs" in req.body else 1
            self.answered.append((time.time(), req.path, answer.status, inputs))
        return answer


class OtherClient:
    """Another integration of the same HubSpot account: GETs a deal ``rate`` times a second,
    spending part of the window the pushes share (HubSpot's limits are per account and app)."""

    def __init__(self, fake: FakeHubSpot, rate: float) -> None:
        self.fake, self.rate, self.done = fake, rate, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "OtherClient":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        session = requests.Session()
        url = f"{self.fake.base_url}/crm/v3/objects/deals/19077001"
        while not self.done.wait(1 / self.rate):
            try:
                session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            except requests.RequestException:
                pass


def busiest_window(stamps: list[float], seconds: float) -> int:
    """The most requests in any ``seconds``-long window."""
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def report(name: str, v: dict, fake: RecordingHubSpot, limit: int, interval: float) -> dict:
    t0, t1, t2 = v[f"{name}_t0"], v[f"{name}_t1"], v[f"{name}_t2"]
    window_calls = [c for c in fake.answered if t0 <= c[0] <= t2]
    others = [c for c in window_calls if c[1].endswith("/deals/19077001")]
    calls = [c for c in window_calls if not c[1].endswith("/deals/19077001")]
    before = [c for c in calls if c[0] < t1]
    accepted = [c for c in calls if c[2] != 429]  # answered: 2xx, or another refusal than the rate limit's
    errors = [c for c in accepted if c[2] >= 300]
    refused = [c for c in calls if c[2] == 429]
    batch = [c for c in accepted if c[1].endswith("/batch/update")]
    stamps = [c[0] for c in accepted]
    span = (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    events = int(v[f"{name}_events"])
    drain = t2 - t1
    rate_limit = limit / interval
    requests_per_s = len(accepted) / drain if drain else 0.0
    # while requests were needed: from the first call to the last, the limit is what bounds them
    busy_rate = (len(accepted) - 1) / span if span else 0.0
    others_accepted = [c for c in others if c[2] != 429 and stamps and stamps[0] <= c[0] <= stamps[-1]]
    shared_rate = (len(accepted) - 1 + len(others_accepted)) / span if span else 0.0
    return {
        "events": events, "enqueue_s": t1 - t0, "calls_before_commit": len(before), "accepted": len(accepted),
        "refused": len(refused), "batch_calls": len(batch), "single_calls": len(accepted) - len(batch),
        "inputs": sum(c[3] for c in batch), "errors": len(errors),
        "busiest": busiest_window(stamps, interval) if stamps else 0,
        "done": int(v[f"{name}_done"]), "exception": int(v[f"{name}_exception"]), "dead": int(v[f"{name}_dead"]),
        "max_attempts": int(v[f"{name}_max_attempts"]), "retried_429": int(v[f"{name}_retried_429"]),
        "retried_events": int(v[f"{name}_retried_events"]), "runs": int(v[f"{name}_runs"]),
        "drain_s": drain, "pushes_per_s": events / drain if drain else 0.0, "requests_per_s": requests_per_s,
        "busy_rate": busy_rate, "busy_pct": 100 * busy_rate / rate_limit, "span_s": span,
        "push_capacity": rate_limit * 100, "others_accepted": len([c for c in others if c[2] != 429]),
        "others_refused": len([c for c in others if c[2] == 429]), "shared_pct": 100 * shared_rate / rate_limit,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="ps_hub_bench_push")
    parser.add_argument("--reuse-db", action="store_true")
    parser.add_argument("--pushes", type=int, default=5_000, help="status pushes of the batch phase")
    parser.add_argument("--single", type=int, default=1_000, help="pushes of the single phase (0: none)")
    parser.add_argument("--limit", type=int, default=100, help="requests the fake accepts per window")
    parser.add_argument("--interval-ms", type=int, default=10_000, help="the fake's rolling window")
    parser.add_argument("--claim", type=int, default=100, help="events per claim (ps_integration_hub.batch_size)")
    parser.add_argument("--shared", type=int, default=500,
                        help="pushes of the shared phase, single calls while another client spends part of "
                             "the window (0: none)")
    parser.add_argument("--other-rate", type=float, default=3.0,
                        help="requests/s of the other client of the shared phase")
    args = parser.parse_args()
    _common.configure_log(clock=True)
    _common.write_config(CONF, args.db)
    notes = []
    if not args.reuse_db:
        notes.append("before the install: " + wait_other_benches())
        _common.create_db(CONF, args.db, "ps_integration_hub")
    notes.append("before measuring: " + wait_other_benches())
    fake = RecordingHubSpot(token=TOKEN).start()
    try:
        for i in range(args.pushes + args.single + args.shared):
            fake.add_deal(str(FIRST_DEAL + i), None, None, [])
        fake.limit_rate(args.limit, args.interval_ms)
        load_before = os.getloadavg()
        log(f"{args.pushes} batch pushes then {args.single} single pushes to a fake HubSpot allowing "
            f"{args.limit} requests per {args.interval_ms / 1000:g} s; one worker process")
        count = args.pushes + args.single + args.shared
        runs = [[("batch", 0, args.pushes, 100)]]
        if args.single:
            runs[0].append(("single", args.pushes, args.single, 1))
        if args.shared:
            runs.append([("shared", args.pushes + args.single, args.shared, 1)])
        t0, values, other = time.monotonic(), {}, None
        for phases in runs:
            if phases[0][0] == "shared":
                other = OtherClient(fake, args.other_rate).start()
            script = SCRIPT % {"phases": phases, "count": count, "claim": args.claim,
                               "base_url": fake.base_url, "token": TOKEN, "first": FIRST_DEAL}
            try:
                proc, found = _common.odoo_shell(CONF, args.db, script, timeout=3600)
            finally:
                if other:
                    other.stop()
            (_common.RUN_DIR / "bench-push.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode or "ok" not in found:
                print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
                raise SystemExit("error: the odoo shell script failed (log: .run/bench-push.log)")
            values.update(found)
        log(f"done in {time.monotonic() - t0:.0f} s")
    finally:
        fake.stop()
    v = {k: float(x) for k, x in values.items()}
    interval = args.interval_ms / 1000
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    print()
    print(f"Push benchmark: fake HubSpot limited to {args.limit} requests per {interval:g} s "
          f"({args.limit / interval:g} req/s); claims of {args.claim}; one worker process")
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; after: {uptime}")
    print("; ".join(notes))
    print()
    print("| phase | pushes | queued in (s) | calls before commit | requests accepted | batch / single calls "
          "| 429 refused | busiest 10 s window | done | exception / dead | retried after a 429 (events) "
          "| max attempts | drain (s) | pushes/s | req/s (drain) | req/s first to last call | of the limit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for name in ("batch", "single", "shared"):
        if f"{name}_t0" not in v:
            continue
        r = results[name] = report(name, v, fake, args.limit, interval)
        print(f"| {name} | {r['events']} | {r['enqueue_s']:.2f} | {r['calls_before_commit']} | {r['accepted']} "
              f"| {r['batch_calls']} / {r['single_calls']} | {r['refused']} | {r['busiest']} | {r['done']} "
              f"| {r['exception']} / {r['dead']} | {r['retried_events']} | {r['max_attempts']} "
              f"| {r['drain_s']:.1f} | {r['pushes_per_s']:.0f} | {r['requests_per_s']:.2f} "
              f"| {r['busy_rate']:.2f} | {r['busy_pct']:.0f}% |")
    print()
    batch = results.get("batch")
    goals = []
    if batch:
        print(f"Batch phase: {batch['inputs']} pushes in {batch['batch_calls']} batch update calls "
              f"({batch['inputs'] / max(batch['batch_calls'], 1):.0f} per call); {batch['pushes_per_s']:.0f} pushes/s "
              f"against a capacity of {batch['push_capacity']:.0f} pushes/s at the limit (100 per call).")
        goals += [
            ("batch: the batch endpoint carries the pushes (<= 1 call per 100 pushes)",
             batch["batch_calls"] <= -(-batch["events"] // 100) and batch["single_calls"] == 0),
            ("batch: every push done, none in exception or dead", batch["done"] == batch["events"]),
            ("batch: no call answered with an error", batch["errors"] == 0),
        ]
    single = results.get("single")
    if single:
        print(f"Single phase: {single['accepted']} PATCH calls, {single['refused']} refused with 429 (each: its "
              f"event retried after HubSpot's window, the rest of its claim given back uncharged for as long); "
              f"{single['busy_rate']:.2f} accepted req/s from the first call to the last = "
              f"{single['busy_pct']:.0f}% of the limit.")
        goals += [
            ("single: every push done after its 429s, none in exception or dead", single["done"] == single["events"]),
            ("single: accepted requests/s >= 90% of the limit while requests are needed", single["busy_pct"] >= 90),
        ]
    shared = results.get("shared")
    if shared:
        print(f"Shared phase: another client made {shared['others_accepted']} accepted and "
              f"{shared['others_refused']} refused calls meanwhile ({args.other_rate:g}/s); the pushes made "
              f"{shared['accepted']} calls, {shared['refused']} refused with 429; both together used "
              f"{shared['shared_pct']:.0f}% of the limit from the pushes' first call to their last.")
        goals += [
            ("shared: every push done after its 429s, none in exception or dead", shared["done"] == shared["events"]),
            ("shared: the window used (pushes and the other client) >= 90% of the limit",
             shared["shared_pct"] >= 90),
        ]
    for r in results.values():
        goals.append(("no vendor call before the pushes' transaction committed", r["calls_before_commit"] == 0))
        goals.append(("the fake never accepted more than the limit in a window", r["busiest"] <= args.limit))
    print()
    for label, ok in goals:
        print(f"- {label}: {'PASS' if ok else 'FAIL'}")
    return 0  # goals are reported, as the other benchmarks do; a failure of the script itself raises


if __name__ == "__main__":
    sys.exit(main())
