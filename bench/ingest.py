#!/usr/bin/env python3
"""Ingest benchmark of the ps-hub inbound route against a real Odoo 19 server, driven by wrk.

    python3 bench/ingest.py [--duration 20] [--concurrency 8] [--db ps_hub_bench]
                            [--reuse-db] [--odoo-config PATH]

Installs ps_integration_hub + base_automation (and the bench's ps_hub_bench_floor) in a
database (unless --reuse-db), starts ``odoo server`` with 2 workers, and loads it with wrk
for six phases: /web/health, Odoo's own webhook (/web/hook/<uuid>), single-event and
100-event HubSpot deliveries to /ps_hub/in/<token>, duplicate redeliveries, and the
durable-write floor (a route that stores the body and nothing else). The deliveries
are built and signed beforehand (HubSpot's SDK), so the load generator does nothing
but send bytes and count answers. See README.md.
Exit code 0 even when goals fail; non-zero only when the script itself fails.
"""

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import _common
import requests
from _common import REPO, RUN_DIR, WORKER_CRONS, create_db, free_port, log, odoo_shell, pg_connect, set_crons

from ps_hub_fakes.signing import hubspot_headers

WARMUP = 2.0
DUP_DURATION = 5.0
LUA = Path(__file__).resolve().parent / "ingest.lua"
# bench-only addons: ps_hub_bench_floor (phase f), installed in the bench database only
BENCH_ADDONS = Path(__file__).resolve().parent / "addons"
FLOOR_MODULE = "ps_hub_bench_floor"
WRK_DIR = RUN_DIR / "wrk"
# the bench connector accepts timestamps this old: a delivery is signed before its phase
# starts (HubSpot signs at sending time), and a long --duration must not make it stale
TOLERANCE = 3600
# requests built for a phase, per second of it: the warm-up's rate (or this floor, when
# higher) times SIZE_MARGIN; a thread that still runs out stops, and the phase says so
RATE_FLOOR = {1: 300.0, 100: 100.0}
SIZE_MARGIN = 1.6
# at most this many distinct bodies are redelivered in the duplicate phase (then again)
DUP_BODIES = 4000


# ---------------------------------------------------------------- setup

def write_config(db: str) -> Path:
    """Write .run/bench.conf for ``db``."""
    return _common.write_config(RUN_DIR / "bench.conf", db, extra_addons=[str(BENCH_ADDONS)])


def ensure_floor_module(conf: Path, db: str) -> None:
    """Install ps_hub_bench_floor into ``db`` when it is not (a database made before phase f existed)."""
    conn = pg_connect(db)
    with conn.cursor() as cr:
        cr.execute("SELECT state FROM ir_module_module WHERE name = %s", (FLOOR_MODULE,))
        row = cr.fetchone()
    conn.close()
    if not row or row[0] != "installed":
        _common.install_modules(conf, db, FLOOR_MODULE)


PREPARE = """
import secrets, time
from odoo import Command
Connector = env['ps.hub.connector'].sudo()
connector = Connector.create({
    'name': 'bench hubspot %s' % time.strftime('%Y%m%d-%H%M%S'),
    'system': 'hubspot', 'auth_type': 'none',
    'public_base_url': PUBLIC_BASE, 'signature_tolerance': TOLERANCE,
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


def prepare(conf: Path, db: str, secret: str, public_base: str) -> dict:
    """Create the connector and webhook rule, disable the worker crons; return the BENCH values."""
    script = (f"SECRET = {secret!r}\nCRONS = {list(WORKER_CRONS)!r}\nPUBLIC_BASE = {public_base!r}\n"
              f"TOLERANCE = {TOLERANCE}\n" + PREPARE)
    proc, values = odoo_shell(conf, db, script)
    if proc.returncode or len(values) < 4:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit("error: preparing data through odoo shell failed")
    return values


def start_server(conf: Path, db: str, port: int, workers: int, db_filter: bool = True) -> subprocess.Popen:
    """Start the benchmarked server (``workers`` workers, no cron thread), log in .run/bench-server.log."""
    return _common.start_server(conf, db, port, RUN_DIR / "bench-server.log", cron_threads=0, workers=workers,
                                db_filter=db_filter,
                                after=["--limit-time-real=600", "--limit-request=100000"],
                                see=".run/bench-server.log")


# ---------------------------------------------------------------- wrk

def http_request(method: str, path: str, host: str, headers: dict, body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request, as wrk will send them."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class WrkRun:
    """What one wrk run reported (bench/ingest.lua's WRK_RESULT line), or several merged."""
    seconds: float
    requests: int
    hist: dict  # latency in microseconds: number of requests
    socket_errors: dict
    threads: list
    server_cpu: dict | None = None  # CPU seconds of the Odoo server and PostgreSQL during the run
    wrk_cpu: float = 0.0  # CPU seconds of wrk itself

    def latency_ms(self, pct: float) -> float:
        """The latency below which ``pct`` % of the answers came (nearest rank)."""
        total = sum(self.hist.values())
        rank, seen = max(1, math.ceil(pct / 100 * total)), 0
        for value in sorted(self.hist):
            seen += self.hist[value]
            if seen >= rank:
                return value / 1000
        return float("nan")

    @classmethod
    def merge(cls, runs: list["WrkRun"]) -> "WrkRun":
        """One run of all of ``runs`` (slices of a phase): sums, and the histograms merged."""
        hist, errors, cpu = {}, {}, {"odoo": 0.0, "pg": 0.0}
        for run in runs:
            for value, count in run.hist.items():
                hist[value] = hist.get(value, 0) + count
            for key, count in run.socket_errors.items():
                errors[key] = errors.get(key, 0) + count
            for key in cpu:
                cpu[key] += run.server_cpu[key] if run.server_cpu else math.nan
        return cls(sum(r.seconds for r in runs), sum(r.requests for r in runs), hist, errors,
                   [t for r in runs for t in r.threads], cpu, sum(r.wrk_cpu for r in runs))

    @property
    def statuses(self) -> dict:
        out = {}
        for t in self.threads:
            for status, count in t["statuses"].items():
                out[status] = out.get(status, 0) + count
        return out

    @property
    def accepted(self) -> int:
        return sum(t["accepted"] for t in self.threads)

    @property
    def duplicates(self) -> int:
        return sum(t["duplicates"] for t in self.threads)

    @property
    def exhausted(self) -> bool:
        return any(t["exhausted"] for t in self.threads)


class CpuMeter:
    """CPU time used by the Odoo server's processes and its database's PostgreSQL backends.

    On a shared machine the other work moves every rate, but much less what each request
    costs: CPU seconds per request of the server side (Odoo workers, PostgreSQL) tell what
    the route costs next to /web/health even when the rates are noisy. Read from /proc
    (Linux, PostgreSQL on this machine); None when it cannot be read.
    """

    def __init__(self, server_pgid: int, db: str):
        self.pgid = server_pgid
        self.conn = pg_connect(db)
        self.conn.autocommit = True
        self.db = db
        self.tick = os.sysconf("SC_CLK_TCK")

    def _pg_pids(self) -> set[int]:
        with self.conn.cursor() as cr:
            cr.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                       (self.db,))
            return {row[0] for row in cr.fetchall()}

    def _ticks(self, pg_pids: set[int]) -> dict:
        """{(kind, pid): utime + stime ticks} of the server's processes and the given backends."""
        out = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            pid = int(entry.name)
            kind = "odoo" if int(fields[2]) == self.pgid else "pg" if pid in pg_pids else None
            if kind:
                out[(kind, pid)] = int(fields[11]) + int(fields[12])
        return out

    def start(self):
        try:
            self._pids = self._pg_pids()
            self._before = self._ticks(self._pids)
        except (OSError, ValueError, IndexError):
            self._before = None

    def stop(self) -> dict | None:
        """{'odoo': s, 'pg': s} since start() (processes born since then count from zero)."""
        if self._before is None:
            return None
        try:
            after = self._ticks(self._pids | self._pg_pids())
        except (OSError, ValueError, IndexError):
            return None
        used = {"odoo": 0.0, "pg": 0.0}
        for key, ticks in after.items():
            used[key[0]] += (ticks - self._before.get(key, 0)) / self.tick
        return used


def run_wrk(url: str, label: str, records: list[Iterable[bytes]], duration: float, *, cycle: bool,
            expect: tuple[int, int] = (-1, -1), meter: CpuMeter | None = None) -> WrkRun:
    """Run wrk for ``duration`` s, thread i sending ``records[i]`` on its one connection."""
    WRK_DIR.mkdir(parents=True, exist_ok=True)
    prefix = WRK_DIR / label
    for tid, recs in enumerate(records):
        with open(f"{prefix}.{tid}", "wb") as fh:
            for rec in recs:
                fh.write(b"%d\n" % len(rec))
                fh.write(rec)
    threads = len(records)
    cmd = ["wrk", f"-t{threads}", f"-c{threads}", f"-d{max(1, round(duration))}s", "--timeout", "30s",
           "-s", str(LUA), url, "--", str(prefix), "1" if cycle else "0", str(expect[0]), str(expect[1])]
    if meter:
        meter.start()
    before = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = os.times()
    cpu = meter.stop() if meter else None
    wrk_cpu = after.children_user + after.children_system - before.children_user - before.children_system
    for tid in range(threads):
        Path(f"{prefix}.{tid}").unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if proc.returncode or line is None:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"error: wrk failed (rc={proc.returncode}): {' '.join(cmd)}")
    data = json.loads(line[len("WRK_RESULT "):])
    socket_errors = {k: v for k, v in data["errors"].items() if k != "status" and v}
    return WrkRun(data["duration_us"] / 1e6, data["requests"], dict(data["hist"]), socket_errors,
                  data["threads"], cpu, wrk_cpu)


# ---------------------------------------------------------------- phases

@dataclass
class Totals:
    """What the route acknowledged over the whole run (warm-ups and settlements included)."""
    accepted: int = 0
    dup_sent: int = 0
    dup_acked: int = 0
    odd: list = field(default_factory=list)  # answers other than the expected one
    settled: int = 0  # deliveries in flight when wrk stopped, delivered again by the bench
    settled_stored: int = 0  # ... of which the server had stored (answered as duplicates)
    settled_stored_events: int = 0  # ... their events: stored, never acknowledged
    misaligned: list = field(default_factory=list)  # phases whose answers cannot be matched
    accepted_bodies: list = field(default_factory=list)  # (first event id, n) of single deliveries


@dataclass
class PhaseResult:
    name: str
    run: WrkRun
    slices: int = 1

    @property
    def events(self) -> int:
        """Events acknowledged: accepted by new deliveries, duplicates by redeliveries."""
        return self.run.duplicates if self.name.startswith("e") else self.run.accepted

    @property
    def rps(self) -> float:
        return self.run.requests / self.run.seconds if self.run.seconds else 0.0

    @property
    def eps(self) -> float:
        return self.events / self.run.seconds if self.run.seconds else 0.0


class Bench:
    def __init__(self, base: str, token: str, secret: str, uuid: str, partner_id: int, concurrency: int,
                 meter: CpuMeter | None = None):
        self.base = base
        self.meter = meter
        self.host = base.split("://", 1)[1]
        self.hub_path = f"/ps_hub/in/{token}"
        self.hub_url = f"{base}{self.hub_path}"  # the connector's public URL: what HubSpot signs
        self.secret = secret
        self.hook_path = f"/web/hook/{uuid}"
        self.hook_body = json.dumps({"_model": "res.partner", "_id": partner_id}).encode()
        self.concurrency = concurrency
        self.totals = Totals()
        self.next_id = 1
        self.run_id = int(time.time())
        self.occurred_ms = int(time.time() * 1000)

    # -- deliveries: bodies are a function of their first event id, so any can be rebuilt

    def hubspot_body(self, first: int, n: int) -> bytes:
        return json.dumps([{
            "eventId": self.run_id * 10**9 + i, "subscriptionId": 4242, "portalId": 62515,
            "appId": 1160452, "occurredAt": self.occurred_ms, "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0, "objectId": 1000 + i % 5000, "propertyName": "dealstage",
            "propertyValue": "closedwon", "changeSource": "CRM",
        } for i in range(first, first + n)]).encode()

    def signed_request(self, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", **hubspot_headers(self.secret, self.hub_url, body)}
        return http_request("POST", self.hub_path, self.host, headers, body)

    def post_hubspot(self, body: bytes) -> dict:
        """Deliver ``body`` once more, from Python (settlement, not timed)."""
        r = requests.post(self.hub_url, data=body, timeout=60, headers={
            "Content-Type": "application/json", **hubspot_headers(self.secret, self.hub_url, body)})
        r.raise_for_status()
        return r.json()

    # -- phases

    # A phase is a warm-up, then one or more slices (wrk runs) that are merged: the phases
    # compared with each other run in alternating slices, so that the other work of a
    # shared machine weighs on each of them alike.

    def static_phase(self, label: str, record: bytes) -> tuple:
        records = [[record]] * self.concurrency
        return (lambda: run_wrk(self.base, label + "-warmup", records, WARMUP, cycle=True),
                lambda duration: run_wrk(self.base, label, records, duration, cycle=True, meter=self.meter))

    def health(self) -> tuple:
        return self.static_phase("a", http_request("GET", "/web/health", self.host, {}))

    def floor(self) -> tuple:
        """The durable-write floor: a single-event body, unsigned, stored as it is (ps_hub_bench_floor)."""
        return self.static_phase("f", http_request("POST", "/ps_hub_bench/floor", self.host,
                                                   {"Content-Type": "application/json"}, self.hubspot_body(0, 1)))

    def hook(self) -> tuple:
        record = http_request("POST", self.hook_path, self.host, {"Content-Type": "application/json"},
                              self.hook_body)
        return self.static_phase("b", record)

    def deliveries(self, label: str, n: int) -> tuple:
        """New deliveries of ``n`` events each: a warm-up that also sizes the slices, then slices."""
        rate = {}

        def warmup():
            warm = self._deliver(label + "-warmup", n, WARMUP, self._per_thread(RATE_FLOOR[n] * 2, WARMUP))
            rate["rps"] = max(warm.requests / warm.seconds, RATE_FLOOR[n])

        return warmup, lambda duration: self._deliver(label, n, duration, self._per_thread(rate["rps"], duration))

    def _per_thread(self, rate: float, duration: float) -> int:
        return math.ceil(rate * duration * SIZE_MARGIN / self.concurrency) + 20

    def _deliver(self, label: str, n: int, duration: float, per_thread: int) -> WrkRun:
        firsts = []
        for _tid in range(self.concurrency):
            firsts.append(list(range(self.next_id, self.next_id + per_thread * n, n)))
            self.next_id += per_thread * n
        records = [(self.signed_request(self.hubspot_body(first, n)) for first in mine) for mine in firsts]
        run = run_wrk(self.base, label, records, duration, cycle=False, expect=(n, 0), meter=self._meter(label))
        totals = self.totals
        totals.accepted += run.accepted
        for t, mine in zip(run.threads, firsts, strict=True):
            odd = self._odd(label, t)
            in_flight = self._in_flight(label, run, t)
            if in_flight is not None:
                totals.settled += 1
                answer = self.post_hubspot(self.hubspot_body(mine[in_flight], n))
                totals.accepted += answer.get("accepted", 0)
                if answer.get("duplicates"):
                    totals.settled_stored += 1
                    totals.settled_stored_events += answer["duplicates"]
            if n == 1:
                totals.accepted_bodies += [(first, n) for k, first in enumerate(mine[:t["answered"]], 1)
                                           if k not in odd]
        return run

    def duplicates(self) -> tuple:
        """Redeliveries of accepted single-event bodies, signed again: all must be duplicates."""
        per = []

        def warmup():
            bodies = self.totals.accepted_bodies[:DUP_BODIES]
            per.extend(bodies[i::self.concurrency] for i in range(self.concurrency))
            if not all(per):
                raise SystemExit("error: too few accepted deliveries to redeliver")
            self._redeliver("e-warmup", per, WARMUP)

        return warmup, lambda duration: self._redeliver("e", per, duration)

    def _redeliver(self, label: str, per: list[list[tuple]], duration: float) -> WrkRun:
        records = [(self.signed_request(self.hubspot_body(first, n)) for first, n in mine) for mine in per]
        run = run_wrk(self.base, label, records, duration, cycle=True, expect=(0, 1), meter=self._meter(label))
        totals = self.totals
        totals.accepted += run.accepted
        totals.dup_sent += sum(t["answered"] for t in run.threads)
        totals.dup_acked += run.duplicates
        for t, mine in zip(run.threads, per, strict=True):
            self._odd(label, t)
            in_flight = self._in_flight(label, run, t)
            if in_flight is not None:
                first, n = mine[in_flight % len(mine)]
                answer = self.post_hubspot(self.hubspot_body(first, n))
                totals.accepted += answer.get("accepted", 0)
                totals.dup_sent += n
                totals.dup_acked += answer.get("duplicates", 0)
                if answer != {"accepted": 0, "duplicates": n}:
                    totals.odd.append(f"{label}: settled redelivery answered {answer}")
        return run

    def _meter(self, label: str) -> CpuMeter | None:
        return None if label.endswith("-warmup") else self.meter

    def _odd(self, label: str, thread: dict) -> set[int]:
        """The answers (1-based numbers) of a thread that were not the expected one."""
        numbers = set()
        for item in filter(None, thread["odd"].split(",")):
            numbers.add(int(item.split(":", 1)[0]))
            self.totals.odd.append(f"{label} thread {thread['tid']} answer {item}")
        return numbers

    def _in_flight(self, label: str, run: WrkRun, thread: dict) -> int | None:
        """Index of the request a thread sent but wrk stopped before its answer, if any.

        One connection per thread: requests and answers alternate, so at most the last one
        is unanswered, unless a socket error broke a request (then answers cannot be matched
        to requests any more, and the phase is reported as such).
        """
        gap = thread["sent"] - thread["answered"]
        if run.socket_errors or gap not in (0, 1):
            if label not in self.totals.misaligned:
                self.totals.misaligned.append(label)
            return None
        return thread["answered"] if gap else None


# ---------------------------------------------------------------- report

def machine_info(db: str, load: tuple) -> list[str]:
    cpu = _common.cpu_model() or "unknown"
    conn = pg_connect(db)
    with conn.cursor() as cr:
        cr.execute("SHOW server_version")
        pg_version = cr.fetchone()[0]
    conn.close()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return [
        f"nproc: {os.cpu_count()}",
        f"CPU: {cpu}",
        f"Python: {platform.python_version()} ({sys.executable})",
        f"PostgreSQL: {pg_version}",
        f"load generator: {(wrk.stdout or wrk.stderr).splitlines()[0].strip()}",
        f"load average at script start: {' '.join(f'{x:.2f}' for x in load)}; "
        f"before the phases: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def print_table(results: list[PhaseResult]) -> None:
    head = (f"{'phase':<28}{'secs':>6}{'requests':>10}{'req/s':>9}{'events/s':>10}"
            f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors")
    print(head)
    print("-" * len(head))
    for r in results:
        events = f"{r.eps:.0f}" if r.name.startswith(("c", "d", "e")) else "-"
        errors = {**r.run.statuses, **r.run.socket_errors}
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"
        if r.run.exhausted:
            errors += " (ran out of requests: cut short)"
        lat = r.run.latency_ms
        print(f"{r.name:<28}{r.run.seconds:>6.1f}{r.run.requests:>10}{r.rps:>9.1f}{events:>10}"
              f"{lat(50):>9.1f}{lat(95):>9.1f}{lat(99):>9.1f}  {errors}")


def print_cpu_table(results: list[PhaseResult]) -> None:
    head = (f"{'phase':<28}{'odoo ms/req':>12}{'pg ms/req':>11}{'total':>8}{'x health':>10}"
            f"{'wrk CPU % of a core':>21}")
    print(head)
    print("-" * len(head))
    health = None
    for r in results:
        cpu, wrk = r.run.server_cpu, f"{100 * r.run.wrk_cpu / r.run.seconds:.0f}"
        if not cpu or not r.run.requests:
            print(f"{r.name:<28}{'n/a':>12}{'n/a':>11}{'n/a':>8}{'':>10}{wrk:>21}")
            continue
        odoo, pg = (cpu[k] * 1000 / r.run.requests for k in ("odoo", "pg"))
        health = health or (odoo + pg if r.name.startswith("a") else None)
        ratio = f"{(odoo + pg) / health:.2f}" if health else ""
        print(f"{r.name:<28}{odoo:>12.2f}{pg:>11.2f}{odoo + pg:>8.2f}{ratio:>10}{wrk:>21}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="wrk threads, one connection each (default 8)")
    parser.add_argument("--db", default="ps_hub_bench", help="database (default ps_hub_bench)")
    parser.add_argument("--reuse-db", action="store_true", help="do not (re)create the database")
    parser.add_argument("--workers", type=int, default=2,
                        help="Odoo HTTP workers (default 2; Odoo's deployment guide sizes 2 x cores + 1)")
    parser.add_argument("--slices", type=int, default=4,
                        help="a, b and c run in this many alternating slices of duration/slices s (default 4)")
    parser.add_argument("--phases", default="abcdef",
                        help="the phases to run, among abcdef (default all; e redelivers what c accepted)")
    parser.add_argument("--odoo-config", type=Path,
                        help="use this odoo.conf instead of writing .run/bench.conf (for phase f, its "
                             "addons_path must hold bench/addons)")
    parser.add_argument("--no-db-filter", action="store_true",
                        help="serve the database with --database alone, not --db-filter=^db$ (which makes "
                             "Odoo list the databases, on a new connection, for every request without a session)")
    args = parser.parse_args()
    if not set(args.phases) <= set("abcdef") or ("e" in args.phases and "c" not in args.phases):
        parser.error("--phases: letters among abcdef, and e only with c")
    load_at_start = os.getloadavg()
    if not shutil.which("wrk"):
        raise SystemExit("error: wrk not found (Debian/Ubuntu: sudo apt install wrk)")
    RUN_DIR.mkdir(exist_ok=True)

    conf = args.odoo_config.resolve() if args.odoo_config else write_config(args.db)
    log(f"config: {conf}")
    if not args.reuse_db:
        floor = f",{FLOOR_MODULE}" if "f" in args.phases else ""
        create_db(conf, args.db, f"ps_integration_hub,base_automation{floor}")
    elif "f" in args.phases:
        ensure_floor_module(conf, args.db)
    secret = "bench-" + os.urandom(16).hex()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    info = prepare(conf, args.db, secret, base)
    log(f"connector {info['connector_id']} (HubSpot), webhook rule {info['webhook_uuid']}")
    log("ps hub worker crons (ir_cron_process_events_1/_2) DISABLED for the ingest test "
        "(and --max-cron-threads=0): events stay pending; re-enabled at the end")
    machine = machine_info(args.db, load_at_start)
    server = None
    try:
        server = start_server(conf, args.db, port, args.workers, db_filter=not args.no_db_filter)
        log(f"odoo server up on port {port} (pid {server.pid}, {args.workers} workers)")
        bench = Bench(base, info["token"], secret, info["webhook_uuid"], int(info["partner_id"]),
                      args.concurrency, CpuMeter(server.pid, args.db))
        names = {"a": "a GET /web/health", "b": "b POST /web/hook (Odoo)", "c": "c hub single-event",
                 "d": "d hub 100-event", "e": "e hub duplicates", "f": "f durable-write floor"}
        runners = {"a": bench.health, "b": bench.hook, "c": lambda: bench.deliveries("c", 1),
                   "d": lambda: bench.deliveries("d", 100), "e": bench.duplicates, "f": bench.floor}
        # a, b, c and f are compared with each other: they run in alternating slices (a b c f a b c f ...)
        groups = [[k for k in "abcf" if k in args.phases], *([k] for k in "de" if k in args.phases)]
        runs = {}
        for group in filter(None, groups):
            slices = args.slices if len(group) > 1 else 1
            duration = DUP_DURATION if group == ["e"] else args.duration
            phase_runs = {k: runners[k]() for k in group}
            for k in group:
                log(f"phase {names[k]}: {WARMUP:.0f} s warm-up")
                phase_runs[k][0]()
            for i in range(slices):
                for k in group:
                    log(f"phase {names[k]}: slice {i + 1}/{slices}, {duration / slices:g} s, "
                        f"wrk -t{args.concurrency} -c{args.concurrency}")
                    runs.setdefault(k, []).append(phase_runs[k][1](duration / slices))
        results = [PhaseResult(names[k], WrkRun.merge(runs[k]), len(runs[k])) for k in "abcdef" if k in runs]
        load_at_end = os.getloadavg()
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
    print(f"  load average at the end of the phases: {' '.join(f'{x:.2f}' for x in load_at_end)}")
    print("== settings")
    print(f"  duration {args.duration:g} s/phase (duplicates {DUP_DURATION:g} s), warm-up {WARMUP:g} s, "
          f"concurrency {args.concurrency}, db {args.db}, reuse-db {args.reuse_db}, phases {args.phases}")
    print(f"  a, b, c and f in {args.slices} alternating slices of {args.duration / args.slices:g} s each "
          "(a b c f a b c f ...), each after one warm-up")
    print(f"  odoo server (odoo-bin) --workers={args.workers} --max-cron-threads=0 --limit-request=100000, "
          f"{'--database only' if args.no_db_filter else '--db-filter=^db$'}, "
          "worker crons disabled")
    print(f"  load: wrk -t{args.concurrency} -c{args.concurrency} -d<slice or phase>s --timeout 30s "
          f"-s {LUA.relative_to(REPO)} (pre-built requests, signed before each phase), on the same machine")
    print("== results")
    print_table(results)
    print("== server CPU per request (Odoo server processes, PostgreSQL backends of the database; "
          "from /proc, the other work of the machine excluded)")
    print_cpu_table(results)

    by = {r.name[0]: r for r in results}
    t = bench.totals
    exact = not t.misaligned
    print("== nothing lost")
    expected = t.accepted + t.settled_stored_events
    lost_ok = stored == expected and exact
    print(f"  ps_hub_event rows for the connector: {stored}; accepted acknowledged: {t.accepted} "
          f"+ events of in-flight deliveries found stored: {t.settled_stored_events} = {expected} "
          f"-> {'OK' if stored == expected else 'MISMATCH'}")
    print(f"  in flight when wrk stopped (one per connection at most), delivered again by the bench: "
          f"{t.settled}; the server had stored {t.settled_stored} of them (answered as duplicates), "
          f"accepted the others then (counted above)")
    if t.misaligned:
        print(f"  socket errors in {', '.join(t.misaligned)}: answers not matched to requests, check not exact")
    dup_ok = t.dup_acked == t.dup_sent and not t.odd
    print(f"  duplicates sent: {t.dup_sent}; acknowledged as duplicates: {t.dup_acked}; "
          f"unexpected answers: {len(t.odd)} -> {'OK' if dup_ok else 'MISMATCH'}")
    for line in t.odd[:10]:
        print(f"    {line}")

    print("== goals")

    def goal(label, value, ok, fmt):
        print(f"  {label:<58}{fmt.format(value):>12}  {'PASS' if ok else 'FAIL'}")

    a, b, c, d, f = (by.get(k) for k in "abcdf")
    if b and c:
        r_hook = c.rps / b.rps if b.rps else float("inf")
        goal("single-event req/s / Odoo webhook req/s (>= 2)", r_hook, r_hook >= 2, "{:.2f}")
    if a and c:
        r_health = c.rps / a.rps if a.rps else float("inf")
        r_p99 = c.run.latency_ms(99) / a.run.latency_ms(99)
        goal("single-event req/s / /web/health req/s (>= 0.85)", r_health, r_health >= 0.85, "{:.2f}")
        goal("single-event p99 / /web/health p99 (<= 1.5)", r_p99, r_p99 <= 1.5, "{:.2f}")
    if d:
        goal("100-event deliveries: events/s accepted (>= 12000)", d.eps, d.eps >= 12000, "{:.0f}")
    if f and a:
        # not goals: where the goals stand against what any durable delivery route costs
        print("  for comparison (not goals): the durable-write floor, a route that only stores the body")
        print(f"  {'floor req/s / /web/health req/s':<58}{f.rps / a.rps:>12.2f}")
        print(f"  {'floor p99 / /web/health p99':<58}{f.run.latency_ms(99) / a.run.latency_ms(99):>12.2f}")
        if c:
            print(f"  {'single-event req/s / floor req/s':<58}{c.rps / f.rps:>12.2f}")
    complete = not any(r.run.exhausted for r in results)
    goal("nothing lost (rows == accepted, dups == sent)", stored, lost_ok and dup_ok, "{}")
    if not complete:
        print("  a phase ran out of pre-built requests (cut short): its figures are not valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
