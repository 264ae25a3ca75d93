#!/usr/bin/env python3
"""Ingest benchmark of the ps-hub inbound route against a real Odoo 19 server.

    python3 bench/ingest.py [--duration 20] [--concurrency 8] [--db ps_hub_bench]
                            [--reuse-db] [--odoo-config PATH]

Installs ps_integration_hub + base_automation in a database (unless --reuse-db),
starts ``odoo server`` with 2 workers, and hammers it for five phases:
/web/health, Odoo's own webhook (/web/hook/<uuid>), single-event and 100-event
HubSpot deliveries to /ps_hub/in/<token>, and duplicate redeliveries. See README.md.
Exit code 0 even when goals fail; non-zero only when the script itself fails.
"""

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common
import requests
from _common import RUN_DIR, WORKER_CRONS, create_db, free_port, log, odoo_shell, pg_connect, set_crons

from ps_hub_fakes.signing import hubspot_headers

WARMUP = 2.0
DUP_DURATION = 5.0



# ---------------------------------------------------------------- setup

def write_config(db: str) -> Path:
    """Write .run/bench.conf for ``db``."""
    return _common.write_config(RUN_DIR / "bench.conf", db)


PREPARE = """
import secrets, time
from odoo import Command
Connector = env['ps.hub.connector'].sudo()
connector = Connector.create({
    'name': 'bench hubspot %s' % time.strftime('%Y%m%d-%H%M%S'),
    'system': 'hubspot', 'auth_type': 'none',
})
connector.signing_secret = SECRET
Automation = env['base.automation'].sudo()
rule = Automation.search([('name', '=', 'bench webhook'), ('trigger', '=', 'on_webhook')], limit=1)
if not rule:
    partner_model = env.ref('base.model_res_partner')
    rule = Automation.create({
        'name': 'bench webhook', 'model_id': partner_model.id, 'trigger': 'on_webhook',
        'action_server_ids': [Command.create({
            'name': 'create partner', 'state': 'object_create', 'model_id': partner_model.id,
            'crud_model_id': partner_model.id, 'value': 'Bench partner',
        })],
    })
for xmlid in CRONS:
    env.ref('ps_integration_hub.' + xmlid).sudo().active = False
env.cr.commit()
print('BENCH connector_id=%s' % connector.id)
print('BENCH token=%s' % connector.inbound_token)
print('BENCH webhook_uuid=%s' % rule.webhook_uuid)
print('BENCH partner_id=%s' % env.ref('base.partner_admin').id)
"""


def prepare(conf: Path, db: str, secret: str) -> dict:
    """Create the connector and webhook rule, disable the worker crons; return the BENCH values."""
    script = f"SECRET = {secret!r}\nCRONS = {list(WORKER_CRONS)!r}\n" + PREPARE
    proc, values = odoo_shell(conf, db, script)
    if proc.returncode or len(values) < 4:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit("error: preparing data through odoo shell failed")
    return values


def start_server(conf: Path, db: str, port: int) -> subprocess.Popen:
    """Start the benchmarked server (2 workers, no cron thread), log in .run/bench-server.log."""
    return _common.start_server(conf, db, port, RUN_DIR / "bench-server.log", cron_threads=0,
                                after=["--limit-time-real=600", "--limit-request=100000"],
                                see=".run/bench-server.log")


# ---------------------------------------------------------------- load

@dataclass
class Totals:
    """What the route acknowledged over the whole run (warm-ups included)."""
    accepted: int = 0
    duplicates: int = 0
    dup_sent: int = 0
    dup_acked: int = 0
    dup_wrong: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted_bodies: list = field(default_factory=list)


@dataclass
class PhaseResult:
    name: str
    seconds: float
    latencies: list = field(default_factory=list)
    events: int = 0
    errors: dict = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())


class Bench:
    def __init__(self, base: str, token: str, secret: str, uuid: str, partner_id: int, concurrency: int):
        self.base = base
        self.hub_url = f"{base}/ps_hub/in/{token}"
        self.secret = secret
        self.hook_url = f"{base}/web/hook/{uuid}"
        self.hook_body = json.dumps({"_model": "res.partner", "_id": partner_id}).encode()
        self.concurrency = concurrency
        self.totals = Totals()
        self.counter = itertools.count(1)
        self.counter_lock = threading.Lock()
        self.run_id = int(time.time())

    def next_ids(self, n: int) -> list[int]:
        with self.counter_lock:
            return [next(self.counter) for _ in range(n)]

    def hubspot_body(self, n: int) -> bytes:
        now_ms = int(time.time() * 1000)
        events = [{
            "eventId": self.run_id * 10**9 + i, "subscriptionId": 4242, "portalId": 62515,
            "appId": 1160452, "occurredAt": now_ms, "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0, "objectId": 1000 + i % 5000, "propertyName": "dealstage",
            "propertyValue": "closedwon", "changeSource": "CRM",
        } for i in self.next_ids(n)]
        return json.dumps(events).encode()

    def post_hubspot(self, session: requests.Session, body: bytes) -> requests.Response:
        return session.post(self.hub_url, data=body, timeout=60, headers={
            "Content-Type": "application/json", **hubspot_headers(self.secret, self.hub_url, body)})

    # one request of each phase: returns (ok, status_or_error, events_accepted)
    def do_health(self, session, _state):
        r = session.get(f"{self.base}/web/health", timeout=60)
        return r.ok, r.status_code, 0

    def do_hook(self, session, _state):
        r = session.post(self.hook_url, data=self.hook_body, timeout=60,
                         headers={"Content-Type": "application/json"})
        return r.ok, r.status_code, 0

    def _deliver(self, session, body: bytes, n: int, redelivery: bool) -> tuple:
        """POST one delivery of ``n`` events and add its answer to the totals."""
        totals = self.totals
        r = self.post_hubspot(session, body)
        if redelivery:
            with totals.lock:
                totals.dup_sent += n
        if not r.ok:
            return False, r.status_code, 0
        data = r.json()
        with totals.lock:
            totals.accepted += data.get("accepted", 0)
            totals.duplicates += data.get("duplicates", 0)
            if redelivery:
                totals.dup_acked += data.get("duplicates", 0)
                if data != {"accepted": 0, "duplicates": n}:
                    totals.dup_wrong += 1
            elif data.get("accepted") == n:
                totals.accepted_bodies.append((body, n))
        return True, r.status_code, data.get("duplicates" if redelivery else "accepted", 0)

    def do_single(self, session, _state):
        return self._deliver(session, self.hubspot_body(1), 1, redelivery=False)

    def do_batch100(self, session, _state):
        return self._deliver(session, self.hubspot_body(100), 100, redelivery=False)

    def do_duplicate(self, session, state):
        bodies = self.totals.accepted_bodies
        body, n = bodies[next(state["cursor"]) % len(bodies)]
        return self._deliver(session, body, n, redelivery=True)

    def run_phase(self, name: str, action, duration: float) -> PhaseResult:
        state = {"cursor": itertools.count()}
        self._drive(action, WARMUP, state, None)
        result = PhaseResult(name, duration)
        self._drive(action, duration, state, result)
        return result

    def _drive(self, action, duration: float, state, result: PhaseResult | None) -> None:
        lock = threading.Lock()
        deadline = time.monotonic() + duration

        def worker():
            lat, events, errors = [], 0, {}
            with requests.Session() as session:
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    try:
                        ok, status, n = action(session, state)
                    except (requests.RequestException, ValueError) as exc:
                        ok, status, n = False, type(exc).__name__, 0
                    elapsed = (time.perf_counter() - t0) * 1000
                    if ok:
                        lat.append(elapsed)
                        events += n
                    else:
                        errors[status] = errors.get(status, 0) + 1
            if result is not None:
                with lock:
                    result.latencies.extend(lat)
                    result.events += events
                    for key, count in errors.items():
                        result.errors[key] = result.errors.get(key, 0) + count

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.concurrency)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if result is not None:
            result.seconds = time.monotonic() - t0


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def rate(result: PhaseResult, value: float) -> float:
    return value / result.seconds if result.seconds else 0.0


# ---------------------------------------------------------------- report

def machine_info(db: str, load: tuple) -> list[str]:
    cpu = _common.cpu_model() or "unknown"
    conn = pg_connect(db)
    with conn.cursor() as cr:
        cr.execute("SHOW server_version")
        pg_version = cr.fetchone()[0]
    conn.close()
    return [
        f"nproc: {os.cpu_count()}",
        f"CPU: {cpu}",
        f"Python: {platform.python_version()} ({sys.executable})",
        f"PostgreSQL: {pg_version}",
        f"load average at script start: {' '.join(f'{x:.2f}' for x in load)}; "
        f"before the phases: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def print_table(results: list[PhaseResult]) -> None:
    head = (f"{'phase':<28}{'secs':>6}{'requests':>10}{'req/s':>9}{'events/s':>10}"
            f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors")
    print(head)
    print("-" * len(head))
    for r in results:
        events = f"{rate(r, r.events):.0f}" if r.name.startswith(("c", "d", "e")) else "-"
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items(), key=str)) or "0"
        print(f"{r.name:<28}{r.seconds:>6.1f}{r.requests:>10}{rate(r, r.requests):>9.1f}{events:>10}"
              f"{percentile(r.latencies, 50):>9.1f}{percentile(r.latencies, 95):>9.1f}"
              f"{percentile(r.latencies, 99):>9.1f}  {errors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--db", default="ps_hub_bench", help="database (default ps_hub_bench)")
    parser.add_argument("--reuse-db", action="store_true", help="do not (re)create the database")
    parser.add_argument("--odoo-config", type=Path,
                        help="use this odoo.conf instead of writing .run/bench.conf")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    RUN_DIR.mkdir(exist_ok=True)

    conf = args.odoo_config.resolve() if args.odoo_config else write_config(args.db)
    log(f"config: {conf}")
    if not args.reuse_db:
        create_db(conf, args.db, "ps_integration_hub,base_automation")
    secret = "bench-" + os.urandom(16).hex()
    info = prepare(conf, args.db, secret)
    log(f"connector {info['connector_id']} (HubSpot), webhook rule {info['webhook_uuid']}")
    log("ps hub worker crons (ir_cron_process_events_1/_2) DISABLED for the ingest test "
        "(and --max-cron-threads=0): events stay pending; re-enabled at the end")
    machine = machine_info(args.db, load_at_start)
    port = free_port()
    server = None
    try:
        server = start_server(conf, args.db, port)
        log(f"odoo server up on port {port} (pid {server.pid}, 2 workers)")
        bench = Bench(f"http://127.0.0.1:{port}", info["token"], secret, info["webhook_uuid"],
                      int(info["partner_id"]), args.concurrency)
        phases = [
            ("a GET /web/health", bench.do_health, args.duration),
            ("b POST /web/hook (Odoo)", bench.do_hook, args.duration),
            ("c hub single-event", bench.do_single, args.duration),
            ("d hub 100-event", bench.do_batch100, args.duration),
            ("e hub duplicates", bench.do_duplicate, DUP_DURATION),
        ]
        results = []
        for name, action, duration in phases:
            log(f"phase {name}: {WARMUP:.0f} s warm-up + {duration:g} s at concurrency {args.concurrency}")
            if action is bench.do_duplicate and not bench.totals.accepted_bodies:
                log("no accepted delivery to redeliver: phase skipped")
                continue
            results.append(bench.run_phase(name, action, duration))
    finally:
        if server is not None:
            _common.stop_server(server)
        set_crons(args.db, True)
        log("ps hub worker crons re-enabled")

    conn = pg_connect(args.db)
    with conn.cursor() as cr:
        cr.execute("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s AND direction = 'in'",
                   (int(info["connector_id"]),))
        stored = cr.fetchone()[0]
    conn.close()

    print()
    print("== machine")
    for line in machine:
        print("  " + line)
    print("== settings")
    print(f"  duration {args.duration:g} s/phase (duplicates {DUP_DURATION:g} s), warm-up {WARMUP:g} s, "
          f"concurrency {args.concurrency}, db {args.db}, reuse-db {args.reuse_db}")
    print("  odoo server (odoo-bin) --workers=2 --max-cron-threads=0 --limit-request=100000, "
          "worker crons disabled; load generator on the same machine")
    print("== results")
    print_table(results)

    by = {r.name[0]: r for r in results}
    t = bench.totals
    print("== nothing lost")
    lost_ok = stored == t.accepted
    print(f"  ps_hub_event rows for the connector: {stored}; accepted acknowledged: {t.accepted} "
          f"-> {'OK' if lost_ok else 'MISMATCH'}")
    dup_ok = t.dup_acked == t.dup_sent and t.dup_wrong == 0
    print(f"  duplicates sent: {t.dup_sent}; acknowledged as duplicates: {t.dup_acked}; "
          f"answers other than accepted=0/duplicates=N: {t.dup_wrong} -> {'OK' if dup_ok else 'MISMATCH'}")

    print("== goals")

    def goal(label, value, ok, fmt):
        print(f"  {label:<52}{fmt.format(value):>12}  {'PASS' if ok else 'FAIL'}")

    if all(k in by for k in "abcd"):
        single_rps = rate(by["c"], by["c"].requests)
        hook_rps = rate(by["b"], by["b"].requests)
        health_rps = rate(by["a"], by["a"].requests)
        r1 = single_rps / hook_rps if hook_rps else float("inf")
        r2 = single_rps / health_rps if health_rps else float("inf")
        p99 = percentile(by["c"].latencies, 99)
        eps = rate(by["d"], by["d"].events)
        goal("single-event req/s / Odoo webhook req/s (>= 2)", r1, r1 >= 2, "{:.2f}")
        goal("single-event req/s / /web/health req/s (>= 0.7)", r2, r2 >= 0.7, "{:.2f}")
        goal("single-event p99 latency ms (< 100)", p99, p99 < 100, "{:.1f}")
        goal("100-event deliveries: events/s accepted (>= 3000)", eps, eps >= 3000, "{:.0f}")
    goal("nothing lost (rows == accepted, dups == sent)", stored, lost_ok and dup_ok, "{}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
