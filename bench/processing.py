#!/usr/bin/env python3
"""Processing benchmark of the ps-hub event queue against a bare-ORM baseline and OCA queue_job (Odoo 19).

    python3 bench/processing.py [--light 5000] [--deals 1000] [--db ps_hub_bench_proc] [--reuse-db]
                                [--queue-job-path DIR]
    python3 bench/processing.py --drain [--drain-small 5000] [--drain-large 200000] [--db ps_hub_bench_drain]

Installs ps_integration_hub, ps_quote_to_cash (and queue_job when it is found) unless --reuse-db, then:

1. throughput of the hub's two worker crons (server --workers=2 --max-cron-threads=2) on
   (a) light company.propertyChange events (a partner upserted each) and (b) closed-won
   deals read from a fake HubSpot (customer, contact, confirmed order and project each);
2. the same work done by the bare ORM in one `odoo shell` process without the hub (the
   ceiling): the same partners upserted, the same orders created and confirmed, committed
   per batch of the hub's size; goals: light >= 0.5x and deals >= 0.9x the bare rate;
3. the same handlers run by queue_job (one job per event, channel root:2, --workers=2
   --max-cron-threads=0), reported for comparison; skipped (with how to get it) when
   queue_job is not on --queue-job-path / $PS_HUB_QUEUE_JOB_PATH / the Python path;
4. hub overhead per event in one process (handler time vs. _cron_process_events time);
5. received->done latency of signed deliveries posted at a fifth of the measured capacity.

With --drain, only this (no queue_job needed): the drain rate of a backlog of --drain-large
light events, idle gaps included, against that of --drain-small, on a server with Odoo's
default time limits and nothing that wakes the crons but the hub itself.

See README.md. Exit code 0 even when goals fail; non-zero only when the script itself fails.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import _common
import requests
from _common import (
    RUN_DIR,
    WORKER_CRONS,
    cpu_model,
    free_port,
    log,
    odoo_root,
    set_crons,
    stop_server,
)
from _common import pg_connect as pg

from ps_hub_fakes import FakeHubSpot
from ps_hub_fakes.signing import hubspot_headers

CONF = RUN_DIR / "bench_processing.conf"
PHASE_LIMIT = 480.0  # seconds a throughput phase may take before we report what was done
DRAIN_LIMIT = 3600.0  # the same for a drain phase
DRAIN_GOAL = 0.8  # large backlog's drain rate / small backlog's
IDLE_GAP = 1.0  # seconds without any event done that count as the workers being idle
# the tables a drain writes to, which autovacuum would vacuum and analyze while it runs
DRAIN_TABLES = ("ps_hub_event", "ps_hub_binding", "res_partner", "ps_hub_audit_log", "ir_cron_progress")
AUTOVACUUM_NAPTIME = 60.0  # PostgreSQL's default autovacuum_naptime
POLL = 0.25  # seconds between completion polls (queue_job's date_done is truncated to the second)
SIGNING_SECRET = "bench-processing-signing-secret"
FINAL_STATES = ("done", "ignored", "exception", "dead")
LINE_ITEMS = [
    {"name": "Implementation consulting", "hs_sku": "PS-CONSULT-TM", "quantity": 400, "price": 165,
     "billing_model": "time_and_materials"},
    {"name": "Solution blueprint", "hs_sku": "PS-BLUEPRINT-MS", "quantity": 1, "price": 24000,
     "billing_model": "milestone", "milestones": "Blueprint sign-off:40;Go-live:60"},
    {"name": "Hypercare retainer", "hs_sku": "PS-RETAINER", "quantity": 3, "price": 2800,
     "billing_model": "retainer", "recurringbillingfrequency": "monthly"},
]
# hub rate / bare-ORM rate (issue 7): the hub's queue may cost half of a bare partner upsert, and
# a tenth of a bare order confirmation, whose own cost (order, confirmation, project) dominates
BARE_GOALS = {"light": 0.5, "deal": 0.9}
BATCH = 50  # the hub's default batch (ps_integration_hub.batch_size); the bare baseline commits per batch too
QUEUE_JOB_ENV = "PS_HUB_QUEUE_JOB_PATH"
QUEUE_JOB_HOWTO = (
    "put OCA queue_job for Odoo 19.0 outside this repository, as DIR/queue_job: the odoo/addons/queue_job "
    "folder of the wheel `pip download --no-deps 'odoo-addon-queue_job>=19.0,<19.1'`, or a checkout of "
    "github.com/OCA/queue at branch 19.0 as DIR (queue_job also needs `pip install openupgradelib`); then "
    f"pass --queue-job-path DIR or set ${QUEUE_JOB_ENV}=DIR")


_common.configure_log(clock=True)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------- environment

def find_queue_job(option: str | None) -> tuple[Path | None, str]:
    """(folder holding queue_job/ to add to the addons path, or None when queue_job is on the Python path
    already; how it was found, or why it was not: then the path is None and the note starts with "not found")."""
    given = option or os.environ.get(QUEUE_JOB_ENV)
    if given:
        folder = Path(given).expanduser().resolve()
        if (folder / "__manifest__.py").is_file() and folder.name == "queue_job":
            folder = folder.parent  # the addon itself was given: the addons path needs its parent
        if (folder / "queue_job" / "__manifest__.py").is_file():
            return folder, f"queue_job from {folder / 'queue_job'}"
        return None, f"not found: no queue_job/__manifest__.py in {folder}"
    # a pip-installed odoo-addon-queue_job lives in the odoo.addons namespace: no addons path needed
    code = ("import importlib.util, sys; s = importlib.util.find_spec('odoo.addons.queue_job'); "
            "sys.stdout.write(s.submodule_search_locations[0] if s else '')")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False).stdout.strip()
    if found:
        return None, f"queue_job importable from {found}"
    return None, f"not found on the Python path, no --queue-job-path nor ${QUEUE_JOB_ENV}"


def write_config(db: str, http_port: int, queue_job_dir: Path | None = None) -> None:
    """Write .run/bench_processing.conf for ``db``, with queue_job pointed at ``http_port``."""
    _common.write_config(CONF, db, options=[
        f"dbfilter = ^{db}$",
        f"http_port = {http_port}",
        "http_interface = 127.0.0.1",
    ], sections=[
        "[queue_job]",
        "channels = root:2",
        "host = 127.0.0.1",
        f"port = {http_port}",
        "",
    ], extra_addons=[str(queue_job_dir)] if queue_job_dir else [])


def sql(db: str, query: str, params=None, fetch: bool = True):
    conn = pg(db)
    try:
        with conn, conn.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall() if fetch and cr.description else None
    finally:
        conn.close()


def create_db(db: str, queue_job: bool = True) -> None:
    """Drop and recreate ``db`` with ps_integration_hub, ps_quote_to_cash (and queue_job)."""
    _common.create_db(CONF, db, "ps_integration_hub,ps_quote_to_cash" + (",queue_job" if queue_job else ""))


def ensure_queue_job(db: str) -> None:
    """Install queue_job into a reused database that lacks it (queue_job was found after its install)."""
    if sql(db, "SELECT 1 FROM ir_module_module WHERE name = 'queue_job' AND state = 'installed'"):
        return
    logfile = RUN_DIR / f"install-{db}-queue_job.log"
    log(f"installing queue_job into {db} (log: {logfile})")
    with logfile.open("w") as fh:
        rc = subprocess.run([sys.executable, "-m", "odoo", "-c", str(CONF), "-d", db, "-i", "queue_job",
                             "--stop-after-init", "--log-level=warn"],
                            stdout=fh, stderr=subprocess.STDOUT, cwd=_common.REPO, check=False).returncode
    if rc:
        print(logfile.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"error: queue_job install failed (rc={rc})")


def odoo_shell(db: str, script: str, timeout: float = 1800) -> dict:
    """Run ``script`` in `odoo shell`; return its ``BENCH key=value`` lines."""
    proc, values = _common.odoo_shell(CONF, db, script, timeout=timeout)
    if proc.returncode or "ok" not in values:
        print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
        raise SystemExit("error: odoo shell script failed")
    return values


SETUP = """
env['res.currency'].with_context(active_test=False).search([('name', '=', 'EUR')]).active = True
eur = env.ref('base.EUR')
company = env['res.company'].search([('name', '=', 'PS Consulting Europe')], limit=1)
if not company:
    company = env['res.company'].create({'name': 'PS Consulting Europe', 'currency_id': eur.id})
for code, name, price in (('PS-CONSULT-TM', 'Implementation consulting (T&M)', 165),
                          ('PS-BLUEPRINT-MS', 'Solution blueprint (milestones)', 24000),
                          ('PS-RETAINER', 'Support retainer', 2500)):
    if not env['product.product'].search([('default_code', '=', code)], limit=1):
        env['product.product'].create({'name': name, 'default_code': code, 'type': 'service',
                                       'service_tracking': 'task_in_project', 'list_price': price,
                                       'sale_ok': True, 'company_id': False})
Connector = env['ps.hub.connector'].with_context(active_test=False)
for name in ('hub', 'qj'):
    connector = Connector.search([('name', '=', name), ('system', '=', 'hubspot')], limit=1)
    # production: a new sandbox connector makes no orders (issue 7); the field predates it
    values = {'base_url': FAKE_URL, 'auth_type': 'bearer', 'active': True, 'environment': 'production'}
    if not connector:
        connector = Connector.create(dict(values, name=name, system='hubspot'))
    else:
        connector.write(values)
    connector.auth_secret = 'bench-token'
    connector.signing_secret = SIGNING_SECRET
    if 'ps.hub.event.type' in env:  # a connector of an earlier run keeps its own switches
        env['ps.hub.event.type'].search([('system', '=', 'hubspot')])._hub_switch(connector)
    print('BENCH %s_id=%s' % (name, connector.id))
    print('BENCH %s_token=%s' % (name, connector.inbound_token))
for xmlid in CRONS:
    env.ref('ps_integration_hub.' + xmlid).active = False
print('BENCH company_id=%s' % company.id)
env.cr.commit()
print('BENCH ok=1')
"""

# ==================================================================================================
# The engine's API before and after the issue-7 refactor: the ONE place of this file that knows
# both. Before it, the HubSpot batch handlers are ps.hub.event methods called on the events and
# the worker cron entry point is ps.hub.event._cron_process_events. After it, each event type has
# a handler model with one batch-first method, process(events) -> {event id: outcome}, and the
# entry point may live on ps.hub.engine. Prepended to every `odoo shell` script that calls them.
# ==================================================================================================
ENGINE_API = """
HANDLER_API = {  # workload: (handler model after the refactor, ps.hub.event method before it)
    'deal': ('ps.q2c.hubspot.deal.handler', '_q2c_close_hubspot_deals'),
    'light': ('ps.q2c.hubspot.company.handler', '_q2c_upsert_hubspot_companies'),
}

def handler_target(kind):
    '''(model whose class holds the batch handler of ``kind`` events, the method's name).'''
    new, old = HANDLER_API[kind]
    return (env[new], 'process') if new in env else (env['ps.hub.event'], old)

def handler_events(args, records):
    '''The events a call of the handler got: process(events) after the refactor, events.method() before.'''
    return args[0] if args else records

def delay_handler(kind, event, **job_options):
    '''One queue_job job that runs the handler of ``kind`` on ``event``.'''
    model, method = handler_target(kind)
    if method == 'process':  # the job's recordset is the handler, with the event's context
        return model.with_env(event.env).with_delay(**job_options).process(event)
    return getattr(event.with_delay(**job_options), method)()

def worker_model():
    '''The model whose _cron_process_events the worker crons run.'''
    engine = env['ps.hub.engine'] if 'ps.hub.engine' in env else None
    return engine if engine is not None and hasattr(engine, '_cron_process_events') else env['ps.hub.event']

def enqueue_model():
    '''The model whose _hub_enqueue stores a parsed delivery.'''
    engine = env['ps.hub.engine'] if 'ps.hub.engine' in env else None
    return engine if engine is not None and hasattr(engine, '_hub_enqueue') else env['ps.hub.event']
"""

# Inserts the events of one workload through _hub_enqueue (deliveries of 100 events, as
# HubSpot batches them). MODE 'hub': left pending for the worker crons; MODE 'qj': set to
# 'ignored' (so no hub worker may take them) and one queue_job job per event.
ENQUEUE = ENGINE_API + """
import json, time
from datetime import UTC, datetime
from odoo.addons.ps_integration_hub.services import parsers
Event = env['ps.hub.event'].sudo()
Enqueue = enqueue_model().sudo()
connector = env['ps.hub.connector'].browse(CONNECTOR_ID)
def item(i, object_id):
    base = {'eventId': EVENT_BASE + i, 'subscriptionId': 2310087, 'portalId': 8765432, 'appId': 1160452,
            'occurredAt': int(time.time() * 1000), 'attemptNumber': 0, 'objectId': object_id,
            'changeSource': 'CRM_UI'}
    if KIND == 'light':
        base.update(subscriptionType='company.propertyChange', propertyName='name',
                    propertyValue='Bench company %s' % object_id)
    else:
        base.update(subscriptionType='deal.propertyChange', propertyName='dealstage', propertyValue='closedwon')
    return base
ids = []
for start in range(0, len(OBJECT_IDS), 100):
    chunk = OBJECT_IDS[start:start + 100]
    body = json.dumps([item(start + k, oid) for k, oid in enumerate(chunk)]).encode()
    new_ids, dups = Enqueue._hub_enqueue(connector, parsers.parse_delivery('hubspot', body), {})
    ids.extend(new_ids)
assert len(ids) == len(OBJECT_IDS), (len(ids), len(OBJECT_IDS))
if MODE == 'qj':
    env.cr.execute("UPDATE ps_hub_event SET state = 'ignored', ignore_reason = 'queue_job benchmark' "
                   "WHERE id = ANY(%s)", [ids])
    Event.invalidate_model()
    # Each job runs the handler on its one event, as a module built on queue_job would (one job
    # per webhook event). The hub's workers run handlers with tracking and its notifications off;
    # queue_job keeps only the context keys _job_prepare_context_before_enqueue_keys names, so it
    # is extended here, in the enqueuing process, as such a module would extend it.
    model, _method = handler_target(KIND)
    for cls in {type(model), type(Event)}:
        keys = cls._job_prepare_context_before_enqueue_keys(model)
        cls._job_prepare_context_before_enqueue_keys = lambda self, _k=keys: (*_k, 'tracking_disable', 'mail_notrack')
    t_jobs = time.monotonic()
    for event in Event.with_context(tracking_disable=True, mail_notrack=True).browse(sorted(ids)):
        delay_handler(KIND, event, channel='root', description=TAG)
    print('BENCH job_create_s=%.2f' % (time.monotonic() - t_jobs))
env.cr.commit()
print('BENCH commit_at=%s' % datetime.now(UTC).replace(tzinfo=None).isoformat())
print('BENCH min_id=%s' % min(ids))
print('BENCH max_id=%s' % max(ids))
print('BENCH ok=1')
"""

# Hub overhead in one process: fresh connector, 1000 events, handler wrapped with a timer.
OVERHEAD = ENGINE_API + """
import json, time
from odoo.addons.ps_integration_hub.services import parsers
Event = env['ps.hub.event'].sudo()
Enqueue = enqueue_model().sudo()
Worker = worker_model().sudo()
env.cr.execute("SELECT count(*) FROM ps_hub_event WHERE state IN ('pending', 'retry', 'processing')")
print('BENCH foreign_open=%s' % env.cr.fetchone()[0])
for kind, object_ids in (('deal', DEAL_IDS), ('light', LIGHT_IDS)):
    model, method = handler_target(kind)
    cls = type(model)
    connector = env['ps.hub.connector'].create({
        'name': 'overhead %s %s' % (kind, TAG), 'system': 'hubspot', 'base_url': FAKE_URL,
        'auth_type': 'bearer', 'environment': 'production'})
    connector.auth_secret = 'bench-token'
    items = []
    for i, oid in enumerate(object_ids):
        ev = {'eventId': EVENT_BASE + i, 'subscriptionId': 1, 'portalId': 1, 'occurredAt': int(time.time() * 1000),
              'objectId': oid, 'changeSource': 'CRM_UI'}
        if kind == 'light':
            ev.update(subscriptionType='company.propertyChange', propertyName='name',
                      propertyValue='Overhead company %s' % oid)
        else:
            ev.update(subscriptionType='deal.propertyChange', propertyName='dealstage', propertyValue='closedwon')
        items.append(ev)
    for start in range(0, len(items), 100):
        body = json.dumps(items[start:start + 100]).encode()
        Enqueue._hub_enqueue(connector, parsers.parse_delivery('hubspot', body), {})
    env.cr.commit()
    original = getattr(cls, method)
    acc = {'t': 0.0, 'n': 0}
    def timed(self, *args, _orig=original, _acc=acc, **kwargs):
        # the handler's writes are the handler's cost: flush them before the clock stops
        # (the savepoint around the handler would flush them otherwise, on the hub's clock)
        t = time.perf_counter()
        try:
            result = _orig(self, *args, **kwargs)
            self.env.flush_all()
            return result
        finally:
            _acc['t'] += time.perf_counter() - t
            _acc['n'] += len(handler_events(args, self))
    setattr(cls, method, timed)
    calls = 0
    try:
        t0 = time.perf_counter()
        while calls < 100:
            Worker._cron_process_events(limit=50)
            calls += 1
            env.cr.execute("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s AND "
                           "state IN ('pending', 'processing')", [connector.id])
            if not env.cr.fetchone()[0]:
                break
        total = time.perf_counter() - t0
    finally:
        setattr(cls, method, original)
    env.cr.execute("SELECT state, count(*) FROM ps_hub_event WHERE connector_id = %s GROUP BY state",
                   [connector.id])
    states = dict(env.cr.fetchall())
    print('BENCH %s=%s' % (kind, json.dumps({'total': total, 'handler': acc['t'], 'handled': acc['n'],
                                              'n': len(object_ids), 'calls': calls, 'states': states,
                                              'handler_api': '%s.%s' % (model._name, method),
                                              'worker': worker_model()._name})))
print('BENCH ok=1')
"""

# The bare-ORM baseline (issue 7: "the ceiling"): the partners and orders the hub makes of the
# same workload, made by the ORM alone in this one process, without the hub (no event, claim,
# vendor call, matching or binding), committed per batch of the hub's size, with tracking off
# as the hub's workers have it. ITEMS comes from the fake HubSpot's records of the workload.
BARE = """
import json, time
from odoo.fields import Command
ctx = dict(tracking_disable=True, mail_notrack=True)
Partner = env['res.partner'].with_context(**ctx)
countries = {}
def country(name):
    if name not in countries:
        countries[name] = env['res.country'].search(['|', ('name', '=ilike', name), ('code', '=ilike', name)],
                                                    limit=1).id or False
    return countries[name]
def partner_values(c):
    return {'ref': c['ref'], 'name': c['name'], 'is_company': True, 'company_id': False,
            'website': c['website'], 'city': c['city'], 'country_id': country(c['country'])}
# lookups a warm hub worker has cached (not timed)
for c in ITEMS[:1]:
    country((c.get('company') or c)['country'])
if KIND == 'deal':
    company = env['res.company'].browse(COMPANY_ID)
    eur = env.ref('base.EUR')
    Order = env['sale.order'].with_company(company).with_context(
        allowed_company_ids=list({company.id, *env.companies.ids}), **ctx)
    pricelist = env['product.pricelist'].search([
        ('currency_id', '=', eur.id), ('company_id', 'in', [company.id, False]), ('item_ids', '=', False)],
        order='company_id, id', limit=1) or env['product.pricelist'].create({
            'name': 'CRM prices (EUR)', 'currency_id': eur.id, 'company_id': company.id})
    products = {p.default_code: p.id for p in env['product.product'].search(
        [('default_code', 'in', list({l['sku'] for d in ITEMS for l in d['lines']}))])}
    terms = {}
    for d in ITEMS:
        if d['payment_terms'] not in terms:
            terms[d['payment_terms']] = env['account.payment.term'].search([
                ('name', '=ilike', d['payment_terms']), ('company_id', 'in', [company.id, False])], limit=1).id
    env.cr.commit()
cpu0, t0 = time.process_time(), time.perf_counter()
created = written = 0
for start in range(0, len(ITEMS), BATCH):
    batch = ITEMS[start:start + BATCH]
    if KIND == 'light':
        # upsert: the existing partners by their key (the binding's equivalent), the changed values
        # written, the missing partners created in one create
        existing = {p.ref: p for p in Partner.search([('ref', 'in', [c['ref'] for c in batch])])}
        missing = []
        for c in batch:
            partner = existing.get(c['ref'])
            if partner is None:
                missing.append(partner_values(c))
            elif partner.name != c['name']:
                partner.write({'name': c['name']})
                written += 1
        Partner.create(missing)
        created += len(missing)
    else:
        customers = Partner.create([partner_values(d['company']) for d in batch])
        contacts = Partner.create([{'parent_id': customer.id, 'type': 'contact', 'name': d['contact']['name'],
                                    'email': d['contact']['email']} for customer, d in zip(customers, batch)])
        orders = Order.create([{
            'partner_id': customer.id, 'partner_invoice_id': customer.id, 'company_id': company.id,
            'pricelist_id': pricelist.id, 'currency_id': eur.id, 'client_order_ref': d['po'],
            'origin': d['name'], 'payment_term_id': terms[d['payment_terms']] or False,
            'order_line': [Command.create({'product_id': products[l['sku']], 'name': l['name'],
                                           'product_uom_qty': l['quantity'], 'price_unit': l['price'],
                                           'discount': 0.0}) for l in d['lines']],
        } for customer, d in zip(customers, batch)])
        orders.action_confirm()
        created += len(orders)
    env.cr.commit()
elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
refs = [(c.get('company') or c)['ref'] for c in ITEMS]
check = {}
if KIND == 'light':
    check['partners'] = Partner.search_count([('ref', 'in', refs)])
else:
    env.cr.execute('''
        SELECT count(DISTINCT so.id),
               count(DISTINCT so.id) FILTER (WHERE EXISTS (
                   SELECT 1 FROM sale_order_line sol JOIN project_project pp ON pp.sale_line_id = sol.id
                    WHERE sol.order_id = so.id))
          FROM sale_order so JOIN res_partner p ON p.id = so.partner_id
         WHERE so.state = 'sale' AND p.ref = ANY(%s)''', [refs])
    check['orders'], check['with_project'] = env.cr.fetchone()
print('BENCH result=%s' % json.dumps(dict(check, n=len(ITEMS), elapsed=elapsed, cpu=cpu, created=created,
                                           written=written, batch=BATCH)))
print('BENCH ok=1')
"""


def start_server(db: str, port: int, name: str, load: str, cron_threads: int,
                 odoo_limits: bool = False) -> subprocess.Popen:
    """Start a measured server (log .run/bench_processing-<name>.log) and wait until it is healthy.

    Time limits of 900 s, or with ``odoo_limits`` Odoo's defaults (real 120 s, CPU 60 s).
    """
    logpath = RUN_DIR / f"bench_processing-{name}.log"
    limits = ([] if odoo_limits else
              ["--limit-time-real=900", "--limit-time-cpu=900", "--limit-time-real-cron=900"])
    proc = _common.start_server(
        CONF, db, port, logpath, cron_threads=cron_threads, before=[f"--load={load}"],
        after=[*limits, "--limit-request=1000000"],
        env=dict(os.environ, ODOO_QUEUE_JOB_PORT=str(port)), timeout=120, poll=0.5)
    log(f"{name} server up (pid {proc.pid}, log {logpath})")
    return proc


OTHER_BENCHES = r"bench/(ingest|processing|hot_object)\.py"
WAIT_OTHERS = 1800.0  # seconds to wait for another benchmark run to end (a processing run takes ~20 min)


def _own_lineage() -> set[int]:
    """This process and its ancestors (a `timeout ... bench/processing.py` wrapper is no other run)."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def other_benches() -> list[str]:
    """Command lines of the other benchmark runs on this machine (any checkout)."""
    out = subprocess.run(["pgrep", "-af", OTHER_BENCHES], capture_output=True, text=True, check=False).stdout
    own = _own_lineage()
    return [line.split(" ", 1)[1] for line in out.splitlines()
            if line.strip() and int(line.split(" ", 1)[0]) not in own]


def wait_other_benches() -> str:
    """Wait while another benchmark run (bench/ingest.py, processing.py, hot_object.py) shares the cores."""
    t0 = time.monotonic()
    others = other_benches()
    if others:
        log(f"another benchmark is running ({'; '.join(others)[:300]}): waiting for it to end "
            f"(up to {WAIT_OTHERS / 60:.0f} min)")
    while others and time.monotonic() - t0 < WAIT_OTHERS:
        time.sleep(5)
        others = other_benches()
    waited = time.monotonic() - t0
    if others:
        return f"another benchmark still running after {waited:.0f} s: measured anyway"
    return f"waited {waited:.0f} s for another benchmark run" if waited > 1 else "no other benchmark running"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.db = args.db
        self.port = free_port()
        self.fake = FakeHubSpot()
        self.server = None
        self.ids = {}
        # object/event ids unique to this run, so bindings of an earlier run (--reuse-db) never short-cut
        self.base = int(time.time()) * 10_000_000
        self.next_block = 0
        self.results = {}
        self.notes = []

    def block(self, n: int) -> list[int]:
        start = self.base + self.next_block
        self.next_block += max(n, 1000) + 1000
        return list(range(start, start + n))

    def add_deals(self, deal_ids: list[int]) -> None:
        for deal_id in deal_ids:
            self.fake.add_deal(str(deal_id), str(deal_id), str(deal_id), LINE_ITEMS,
                               dealname=f"Bench deal {deal_id}")

    def enqueue(self, connector: str, kind: str, object_ids: list[int], mode: str, tag: str) -> dict:
        script = (f"CONNECTOR_ID = {self.ids[connector + '_id']}\nKIND = {kind!r}\nMODE = {mode!r}\n"
                  f"TAG = {tag!r}\nEVENT_BASE = {object_ids[0]}\nOBJECT_IDS = {object_ids!r}\n" + ENQUEUE)
        t0 = time.monotonic()
        out = odoo_shell(self.db, script)
        log(f"enqueued {len(object_ids)} {kind} events for {connector} ({mode}) in {time.monotonic() - t0:.1f} s"
            + (f", of which job creation {out['job_create_s']} s" if "job_create_s" in out else ""))
        return out

    def workload(self, kind: str, n: int) -> list[int]:
        """Fresh object ids for ``n`` events of ``kind``, added to the fake HubSpot (deals, or companies:
        a company event of an unbound company reads it from HubSpot to match it)."""
        object_ids = self.block(n)
        if kind == "deal":
            self.add_deals(object_ids)
        else:
            self.add_companies(object_ids)
        return object_ids

    def add_companies(self, company_ids: list[int]) -> None:
        for company_id in company_ids:
            self.fake.add_company(str(company_id), f"Bench company {company_id}")

    @staticmethod
    def wait_final(m0: float, poll: Callable[[], tuple[bool, tuple]],
                   limit: float = PHASE_LIMIT) -> tuple[tuple, bool]:
        """Call ``poll`` every POLL s until it says all is final or ``limit`` s passed since ``m0``;
        return its last row and whether the phase was truncated."""
        while True:
            time.sleep(POLL)
            finished, row = poll()
            if finished:
                return row, False
            if time.monotonic() - m0 > limit:
                return row, True

    def finish(self, res: dict, connector: str, object_ids: list[int]) -> dict:
        """Add the record checks to a phase result and log its outcome."""
        res.update(self.check_records(connector, res["kind"], object_ids))
        log(f"{res['system']} {res['kind']}: {res['done']}/{res['n']} done in {res['elapsed']:.1f} s"
            f"{' (TRUNCATED)' if res['truncated'] else ''}")
        return res

    # -------------------------------------------------------------- hub

    def run_hub(self, kind: str, n: int) -> dict:
        object_ids = self.workload(kind, n)
        out = self.enqueue("hub", kind, object_ids, "hub", f"hub-{kind}")
        lo, hi = int(out["min_id"]), int(out["max_id"])
        self.play_autovacuum(f"hub {kind}")
        t0 = set_crons(self.db, True, trigger=True)
        m0 = time.monotonic()
        log(f"hub {kind}: crons activated and triggered, waiting for {n} events")

        def poll() -> tuple[bool, tuple]:
            row = sql(self.db, """
                SELECT count(*) FILTER (WHERE state = ANY(%s)), count(*) FILTER (WHERE state = 'done'),
                       max(done_at), count(*) FILTER (WHERE state = 'retry')
                  FROM ps_hub_event WHERE connector_id = %s AND id BETWEEN %s AND %s""",
                      (list(FINAL_STATES), int(self.ids["hub_id"]), lo, hi))[0]
            return row[0] >= n, row

        (_final, _done, last, retry), truncated = self.wait_final(m0, poll)
        elapsed = time.monotonic() - m0
        set_crons(self.db, False)
        db_elapsed = (last - t0).total_seconds() if last else float("nan")
        states = dict(sql(self.db, "SELECT state, count(*) FROM ps_hub_event WHERE connector_id = %s AND id "
                                   "BETWEEN %s AND %s GROUP BY state", (int(self.ids["hub_id"]), lo, hi)))
        reasons = sql(self.db, "SELECT reason, count(*) FROM ps_hub_event WHERE connector_id = %s AND id BETWEEN "
                               "%s AND %s AND reason IS NOT NULL GROUP BY reason", (int(self.ids["hub_id"]), lo, hi))
        stats = sql(self.db, "SELECT avg(duration_ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
                             "max(attempts) FROM ps_hub_event WHERE connector_id = %s AND id BETWEEN %s AND %s "
                             "AND state = 'done'", (int(self.ids["hub_id"]), lo, hi))[0]
        res = {"system": "hub", "kind": kind, "n": n, "elapsed": elapsed, "db_elapsed": db_elapsed,
               "done": states.get("done", 0),
               "truncated": truncated, "states": states, "reasons": dict(reasons), "retry_seen": retry,
               "handler_avg_ms": stats[0], "handler_p50_ms": stats[1], "max_attempts": stats[2]}
        return self.finish(res, "hub", object_ids)

    # -------------------------------------------------------------- drain

    def vacuum(self) -> float:
        """VACUUM (ANALYZE) the tables a drain writes, as autovacuum would; return the seconds it took."""
        t0 = time.monotonic()
        conn = pg(self.db)
        try:
            conn.autocommit = True
            with conn.cursor() as cr:
                for table in DRAIN_TABLES:
                    cr.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            conn.close()
        return time.monotonic() - t0

    def run_drain(self, n: int) -> dict:
        """A backlog of ``n`` light events (crons off while it is queued), then the crons
        triggered once: time until every event is final, idle gaps included."""
        object_ids = self.workload("light", n)
        out = self.enqueue("hub", "light", object_ids, "hub", f"drain-{n}")
        lo, hi, cid = int(out["min_id"]), int(out["max_id"]), int(self.ids["hub_id"])
        vacuums: list[float] = []
        stop = threading.Event()
        if self.vacuum_stand_in:
            log(f"drain {n}: VACUUM (ANALYZE) {', '.join(DRAIN_TABLES)} in {self.vacuum():.1f} s (not timed)")

            def stand_in():  # autovacuum's rounds, once a minute, during the drain (timed)
                while not stop.wait(AUTOVACUUM_NAPTIME):
                    vacuums.append(self.vacuum())

            threading.Thread(target=stand_in, daemon=True).start()
        t0 = set_crons(self.db, True, trigger=True)
        m0 = time.monotonic()
        log(f"drain {n}: crons activated and triggered once, waiting")
        last_log = [m0]

        def poll() -> tuple[bool, tuple]:
            row = sql(self.db, "SELECT count(*) FILTER (WHERE state = ANY(%s)), max(done_at) FROM ps_hub_event "
                               "WHERE connector_id = %s AND id BETWEEN %s AND %s",
                      (list(FINAL_STATES), cid, lo, hi))[0]
            if time.monotonic() - last_log[0] > 30:
                last_log[0] = time.monotonic()
                log(f"drain {n}: {row[0]} final after {time.monotonic() - m0:.0f} s")
            return row[0] >= n, row

        (final, last), truncated = self.wait_final(m0, poll, DRAIN_LIMIT)
        elapsed = time.monotonic() - m0
        stop.set()
        set_crons(self.db, False)
        states = dict(sql(self.db, "SELECT state, count(*) FROM ps_hub_event WHERE connector_id = %s AND id "
                                   "BETWEEN %s AND %s GROUP BY state", (cid, lo, hi)))
        # the workers' idle time, as the database saw it: gaps between consecutive completions
        idle, max_gap, gaps = sql(self.db, """
            SELECT coalesce(sum(gap) FILTER (WHERE gap > %s), 0), coalesce(max(gap), 0),
                   count(*) FILTER (WHERE gap > %s)
              FROM (SELECT EXTRACT(EPOCH FROM done_at - lag(done_at) OVER (ORDER BY done_at)) AS gap
                      FROM ps_hub_event WHERE connector_id = %s AND id BETWEEN %s AND %s
                       AND done_at IS NOT NULL) g""", (IDLE_GAP, IDLE_GAP, cid, lo, hi))[0]
        first_wait = sql(self.db, "SELECT EXTRACT(EPOCH FROM min(done_at) - %s) FROM ps_hub_event "
                                  "WHERE connector_id = %s AND id BETWEEN %s AND %s", (t0, cid, lo, hi))[0][0]
        res = {"n": n, "elapsed": elapsed, "done": states.get("done", 0), "final": final, "states": states,
               "truncated": truncated, "rate": states.get("done", 0) / elapsed if elapsed else float("nan"),
               "db_elapsed": (last - t0).total_seconds() if last else float("nan"),
               "idle_s": float(idle), "max_gap_s": float(max_gap), "idle_gaps": gaps,
               "first_done_s": float(first_wait or 0), "vacuums_s": vacuums}
        log(f"drain {n}: {res['done']}/{n} done in {elapsed:.1f} s = {res['rate']:.0f} ev/s, "
            f"idle {res['idle_s']:.1f} s in {gaps} gaps > {IDLE_GAP:.0f} s{' (TRUNCATED)' if truncated else ''}")
        return res

    def run_drain_mode(self) -> None:
        args = self.args
        RUN_DIR.mkdir(exist_ok=True)
        write_config(self.db, self.port)
        self.fake.start()
        # first wait, so as not to slow another run down with an install
        self.notes.append("before the install: " + wait_other_benches())
        if not args.reuse_db:
            create_db(self.db, queue_job=False)
        self.autovacuum = sql(self.db, "SHOW autovacuum")[0][0]
        self.vacuum_stand_in = {"auto": self.autovacuum != "on", "on": True, "off": False}[args.vacuum]
        if self.vacuum_stand_in:
            log(f"PostgreSQL autovacuum is {self.autovacuum}: the bench plays it (--vacuum {args.vacuum})")
        self.ids = odoo_shell(self.db, f"FAKE_URL = {self.fake.base_url!r}\nSIGNING_SECRET = {SIGNING_SECRET!r}\n"
                                       f"CRONS = {list(WORKER_CRONS)!r}\n" + SETUP)
        self.notes.append("before measuring: " + wait_other_benches())
        self.load_start = uptime()
        log(f"load before measuring: {self.load_start}")
        t_all = time.monotonic()
        try:
            self.server = start_server(self.db, self.port, "drain", "base,web", 2, odoo_limits=True)
            self.results["drain_small"] = self.run_drain(args.drain_small)
            self.results["drain_large"] = self.run_drain(args.drain_large)
        finally:
            stop_server(self.server)
            self.fake.stop()
        self.total_s = time.monotonic() - t_all
        self.load_end = uptime()
        dump = RUN_DIR / "bench_processing-drain-results.json"
        dump.write_text(json.dumps(self.results, indent=2, default=str))
        log(f"raw results: {dump}")
        small, large = self.results["drain_small"], self.results["drain_large"]
        ratio = large["rate"] / small["rate"] if small["rate"] else float("nan")
        log_text = (RUN_DIR / "bench_processing-drain.log").read_text(errors="replace")
        killed = len(re.findall(r"timeout after \d+s|virtual real time limit|CPU time limit", log_text))
        print()
        print("=" * 100)
        print("ps-hub processing benchmark: backlog drain")
        print("=" * 100)
        cpu = cpu_model() or platform.processor() or "?"
        print(f"machine      : {platform.node()}  nproc={os.cpu_count()}  cpu={cpu}")
        print(f"python/odoo  : {platform.python_version()}  {odoo_root()}")
        print(f"load (start) : {self.load_start}")
        print(f"load (end)   : {self.load_end}")
        print(f"other benches: {'; '.join(self.notes)}")
        print(f"settings     : db={self.db} reuse_db={args.reuse_db}; server --workers=2 --max-cron-threads=2, "
              "Odoo's default time limits (real 120 s, CPU 60 s), no ODOO_NOTIFY_CRON_CHANGES; 2 worker crons, "
              f"batch 50; crons triggered once per backlog; measured part {self.total_s:.0f} s")
        stand_in = (f"played by the bench: VACUUM (ANALYZE) {', '.join(DRAIN_TABLES)} before each drain (not "
                    f"timed) and every {AUTOVACUUM_NAPTIME:.0f} s during it (timed)" if self.vacuum_stand_in
                    else "not played by the bench")
        print(f"autovacuum   : PostgreSQL autovacuum={self.autovacuum}; {stand_in}")
        print()
        print(f"{'backlog':>8} {'done':>8} {'seconds':>9} {'ev/s':>8} {'idle s':>8} {'gaps':>5} {'max gap':>8} "
              f"{'1st done':>8}  states")
        for res in (small, large):
            print(f"{res['n']:>8} {res['done']:>8} {res['elapsed']:>9.1f} {res['rate']:>8.1f} {res['idle_s']:>8.1f} "
                  f"{res['idle_gaps']:>5} {res['max_gap_s']:>8.1f} {res['first_done_s']:>8.1f}  {res['states']}"
                  f"{' TRUNCATED' if res['truncated'] else ''}")
        if large["vacuums_s"]:
            print(f"vacuum rounds during the large drain: {len(large['vacuums_s'])}, "
                  f"{sum(large['vacuums_s']):.1f} s in all")
        print(f"ratio large/small = {ratio:.2f}x   goal >= {DRAIN_GOAL}x   {'PASS' if ratio >= DRAIN_GOAL else 'FAIL'}")
        print(f"workers killed or over a limit (server log): {killed}")
        print("=" * 100)

    # -------------------------------------------------------------- queue_job

    def run_qj(self, kind: str, n: int) -> dict:
        object_ids = self.workload(kind, n)
        tag = f"bench-processing-{kind}-{self.base}"
        self.play_autovacuum(f"queue_job {kind}")  # before the enqueue: the clock starts at its commit
        m_before = time.monotonic()
        out = self.enqueue("qj", kind, object_ids, "qj", tag)
        t0 = datetime.fromisoformat(out["commit_at"])
        # the shell process exits after its commit: measure from the commit, not from now
        m0 = time.monotonic() - max(0.0, (utcnow() - t0).total_seconds())
        log(f"queue_job {kind}: {n} jobs committed, waiting (shell ended {time.monotonic() - m_before:.0f} s "
            "after start)")

        def poll() -> tuple[bool, tuple]:
            row = sql(self.db, """
                SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state IN ('failed', 'cancelled')),
                       max(date_done) FROM queue_job WHERE name = %s""", (tag,))[0]
            return row[0] + row[1] >= n, row

        (_done, _failed, last), truncated = self.wait_final(m0, poll)
        elapsed = time.monotonic() - m0
        db_elapsed = (last - t0).total_seconds() if last else float("nan")
        states = dict(sql(self.db, "SELECT state, count(*) FROM queue_job WHERE name = %s GROUP BY state", (tag,)))
        if truncated:
            sql(self.db, "UPDATE queue_job SET state = 'cancelled' WHERE name = %s AND state IN "
                         "('pending', 'enqueued', 'wait_dependencies')", (tag,), fetch=False)
        retries = sql(self.db, "SELECT max(retry), sum(CASE WHEN retry > 1 THEN 1 ELSE 0 END) FROM queue_job "
                               "WHERE name = %s", (tag,))[0]
        res = {"system": "queue_job", "kind": kind, "n": n, "elapsed": elapsed, "db_elapsed": db_elapsed,
               "done": states.get("done", 0),
               "truncated": truncated, "states": states, "max_retry": retries[0], "jobs_retried": retries[1]}
        return self.finish(res, "qj", object_ids)

    def check_records(self, connector: str, kind: str, object_ids: list[int]) -> dict:
        cid = int(self.ids[connector + "_id"])
        ext = [str(i) for i in object_ids]
        if kind == "light":
            partners = sql(self.db, """
                SELECT count(DISTINCT p.id) FROM ps_hub_binding b JOIN res_partner p ON p.id = b.res_id
                 WHERE b.connector_id = %s AND b.external_model = 'company' AND b.res_model = 'res.partner'
                   AND b.external_id = ANY(%s)""", (cid, ext))[0][0]
            return {"partners": partners, "correct": partners == len(object_ids)}
        orders, with_project = sql(self.db, """
            SELECT count(DISTINCT so.id),
                   count(DISTINCT so.id) FILTER (WHERE EXISTS (
                       SELECT 1 FROM sale_order_line sol JOIN project_project pp ON pp.sale_line_id = sol.id
                        WHERE sol.order_id = so.id))
              FROM ps_hub_binding b JOIN sale_order so ON so.id = b.res_id AND so.state = 'sale'
             WHERE b.connector_id = %s AND b.external_model = 'deal' AND b.res_model = 'sale.order'
               AND b.external_id = ANY(%s)""", (cid, ext))[0]
        return {"orders": orders, "with_project": with_project,
                "correct": orders == len(object_ids) and with_project == len(object_ids)}

    # -------------------------------------------------------------- latency

    def run_latency(self, deals_per_s: float) -> dict:
        rate = deals_per_s / 5 if deals_per_s > 0 else 0.2
        duration = 30.0
        count = max(1, int(duration * rate))
        deal_ids = self.block(count)
        self.add_deals(deal_ids)
        set_crons(self.db, True)
        url = f"http://127.0.0.1:{self.port}/ps_hub/in/{self.ids['hub_token']}"
        session = requests.Session()
        statuses: dict = {}
        log(f"latency: posting {count} closed-won deliveries at {rate:.2f}/s for {duration:.0f} s")
        hub_id = int(self.ids["hub_id"])
        sent_at: dict = {}   # external id -> wall clock before the POST
        seen_at: dict = {}   # external id -> wall clock when first seen final in the DB
        stop = threading.Event()

        def watch():
            conn = pg(self.db)
            conn.autocommit = True
            try:
                with conn.cursor() as cr:
                    while not stop.is_set():
                        cr.execute("SELECT external_id FROM ps_hub_event WHERE connector_id = %s AND "
                                   "external_id = ANY(%s) AND state IN %s",
                                   (hub_id, [str(d) for d in deal_ids], FINAL_STATES))
                        now = time.time()
                        for (ext_id,) in cr.fetchall():
                            seen_at.setdefault(ext_id, now)
                        stop.wait(0.1)
            finally:
                conn.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.monotonic()
        sent = 0
        for i, deal_id in enumerate(deal_ids):
            due = start + i / rate
            now = time.monotonic()
            if now - start > duration + 10:
                break
            if due > now:
                time.sleep(due - now)
            body = json.dumps([{
                "eventId": deal_id, "subscriptionId": 2310087, "portalId": 8765432, "appId": 1160452,
                "occurredAt": int(time.time() * 1000), "subscriptionType": "deal.propertyChange",
                "attemptNumber": 0, "objectId": deal_id, "propertyName": "dealstage",
                "propertyValue": "closedwon", "changeSource": "CRM_UI"}]).encode()
            headers = {"Content-Type": "application/json", **hubspot_headers(SIGNING_SECRET, url, body)}
            sent_at[str(deal_id)] = time.time()
            try:
                resp = session.post(url, data=body, headers=headers, timeout=30)
                key = resp.status_code
            except requests.RequestException as exc:
                key = exc.__class__.__name__
            statuses[key] = statuses.get(key, 0) + 1
            sent += 1
        send_s = time.monotonic() - start
        ext = [str(d) for d in deal_ids[:sent]]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            open_ = sql(self.db, "SELECT count(*) FROM ps_hub_event WHERE connector_id = %s AND external_id = ANY(%s) "
                                 "AND state NOT IN %s", (hub_id, ext, FINAL_STATES))[0][0]
            if not open_:
                break
            time.sleep(1)
        time.sleep(0.3)
        stop.set()
        watcher.join(timeout=10)
        set_crons(self.db, False)
        rows = sql(self.db, "SELECT state, latency_ms FROM ps_hub_event WHERE connector_id = %s AND "
                            "external_id = ANY(%s)", (hub_id, ext))
        lat = [r[1] / 1000 for r in rows if r[0] == "done" and r[1] is not None]
        states: dict = {}
        for state, _lat in rows:
            states[state] = states.get(state, 0) + 1
        own = [seen_at[k] - sent_at[k] for k in sent_at if k in seen_at]
        return {"rate": rate, "sent": sent, "send_s": send_s, "statuses": statuses, "states": states,
                "n": len(lat), "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
                "max": max(lat) if lat else float("nan"), "negative": sum(1 for v in lat if v < 0),
                "own_n": len(own), "own_p50": pct(own, 50), "own_p95": pct(own, 95), "own_p99": pct(own, 99),
                "own_max": max(own) if own else float("nan")}

    # -------------------------------------------------------------- overhead

    def run_overhead(self) -> dict:
        # 1000 events each (fewer when the run asked for fewer): a deal costs ~0.3 s here
        n_deal, n_light = min(1000, self.args.deals), min(1000, self.args.light)
        deal_ids = self.block(n_deal)
        light_ids = self.block(n_light)
        self.add_deals(deal_ids)
        self.add_companies(light_ids)
        script = (f"FAKE_URL = {self.fake.base_url!r}\nTAG = {str(self.base)!r}\nEVENT_BASE = {deal_ids[0]}\n"
                  f"DEAL_IDS = {deal_ids!r}\nLIGHT_IDS = {light_ids!r}\n" + OVERHEAD)
        log(f"overhead: one odoo shell process, {n_deal} deal events then {n_light} light events")
        out = odoo_shell(self.db, script)
        res = {"foreign_open": int(out["foreign_open"])}
        for kind in ("deal", "light"):
            d = json.loads(out[kind])
            per_event = (d["total"] - d["handler"]) / d["n"]
            mean_handler = d["handler"] / max(d["handled"], 1)
            d.update(per_event_ms=per_event * 1000, mean_handler_ms=mean_handler * 1000,
                     pct=100 * per_event / mean_handler if mean_handler else float("nan"))
            res[kind] = d
        return res

    # -------------------------------------------------------------- bare-ORM baseline

    def bare_items(self, kind: str, object_ids: list[int]) -> list[dict]:
        """What the hub makes of these fake HubSpot objects, as plain values for the bare baseline."""
        def company(company_id: str) -> dict:
            props = self.fake.companies[company_id]["properties"]
            return {"ref": company_id, "name": props["name"], "website": f"https://{props['domain']}",
                    "city": props["city"], "country": props["country"]}

        if kind == "light":
            return [company(str(i)) for i in object_ids]
        items = []
        for deal_id in object_ids:
            deal = self.fake.deals[str(deal_id)]
            props, assoc = deal["properties"], deal["associations"]
            contact = self.fake.contacts[assoc["contacts"]["results"][0]["id"]]["properties"]
            lines = [self.fake.line_items[r["id"]]["properties"] for r in assoc["line items"]["results"]]
            items.append({
                "name": props["dealname"], "po": props["po_number"], "payment_terms": props["payment_terms"],
                "company": company(assoc["companies"]["results"][0]["id"]),
                "contact": {"name": f"{contact['firstname']} {contact['lastname']}", "email": contact["email"]},
                "lines": [{"sku": line["hs_sku"], "name": line["name"], "quantity": float(line["quantity"]),
                           "price": float(line["price"])} for line in lines],
            })
        return items

    def run_bare(self, kind: str, n: int) -> dict:
        """The bare-ORM baseline of a workload: one `odoo shell` process, no server running."""
        object_ids = self.workload(kind, n)
        items = self.bare_items(kind, object_ids)
        self.play_autovacuum(f"bare {kind}")
        script = (f"KIND = {kind!r}\nBATCH = {BATCH}\nCOMPANY_ID = {int(self.ids['company_id'])}\n"
                  f"ITEMS = {json.dumps(items)}\n" + BARE)
        log(f"bare {kind}: {n} in one odoo shell process, batches of {BATCH}")
        res = json.loads(odoo_shell(self.db, script)["result"])
        if kind == "light":
            res["correct"] = res["partners"] == n
        else:
            res["correct"] = res["orders"] == n and res["with_project"] == n
        log(f"bare {kind}: {res['created']} in {res['elapsed']:.1f} s = {n / res['elapsed']:.1f}/s, "
            f"CPU of the process {res['cpu']:.1f} s")
        return res

    def play_autovacuum(self, phase: str) -> None:
        """With PostgreSQL's autovacuum off (--vacuum auto) or --vacuum on: VACUUM (ANALYZE) the database
        before a throughput phase, not timed, so that no phase plans on the statistics of an earlier one's
        tables (the hub's and the baseline's searches alike)."""
        if not self.vacuum_stand_in:
            return
        t0 = time.monotonic()
        conn = pg(self.db)
        try:
            conn.autocommit = True
            with conn.cursor() as cr:
                cr.execute("VACUUM (ANALYZE)")
        finally:
            conn.close()
        log(f"{phase}: VACUUM (ANALYZE) of the database in {time.monotonic() - t0:.1f} s (not timed)")

    # -------------------------------------------------------------- driver

    def run(self) -> None:
        args = self.args
        RUN_DIR.mkdir(exist_ok=True)
        queue_job_dir, self.queue_job_note = find_queue_job(args.queue_job_path)
        self.queue_job = not self.queue_job_note.startswith("not found")
        if not self.queue_job:
            log(f"queue_job comparison skipped: {self.queue_job_note}. To run it, {QUEUE_JOB_HOWTO}")
        write_config(self.db, self.port, queue_job_dir)
        self.fake.start()
        log(f"fake HubSpot at {self.fake.base_url}")
        self.notes.append("before the install: " + wait_other_benches())
        if not args.reuse_db:
            create_db(self.db, queue_job=self.queue_job)
        elif self.queue_job:
            ensure_queue_job(self.db)
        self.autovacuum = sql(self.db, "SHOW autovacuum")[0][0]
        self.vacuum_stand_in = {"auto": self.autovacuum != "on", "on": True, "off": False}[args.vacuum]
        self.ids = odoo_shell(self.db, f"FAKE_URL = {self.fake.base_url!r}\nSIGNING_SECRET = {SIGNING_SECRET!r}\n"
                                       f"CRONS = {list(WORKER_CRONS)!r}\n" + SETUP)
        self.notes.append("before measuring: " + wait_other_benches())
        self.load_start = uptime()
        log(f"load before measuring: {self.load_start}")
        t_all = time.monotonic()
        try:
            self.server = start_server(self.db, self.port, "hub", "base,web", 2)
            self.results["hub_light"] = self.run_hub("light", args.light)
            self.results["hub_deal"] = self.run_hub("deal", args.deals)
            hub_deal = self.results["hub_deal"]
            self.results["latency"] = self.run_latency(hub_deal["done"] / hub_deal["elapsed"])
            stop_server(self.server)
            self.server = None
            # the ceiling, right after the hub, with no server running
            self.results["bare_light"] = self.run_bare("light", args.light)
            self.results["bare_deal"] = self.run_bare("deal", args.deals)
            if self.queue_job and not args.no_queue_job:
                self.server = start_server(self.db, self.port, "queue_job", "base,web,queue_job", 0)
                self.results["qj_light"] = self.run_qj("light", args.queue_job_light or args.light)
                self.results["qj_deal"] = self.run_qj("deal", args.queue_job_deals or args.deals)
                stop_server(self.server)
                self.server = None
            self.results["overhead"] = self.run_overhead()
        finally:
            stop_server(self.server)
            self.fake.stop()
        self.total_s = time.monotonic() - t_all
        self.load_end = uptime()
        dump = RUN_DIR / "bench_processing-results.json"
        dump.write_text(json.dumps(self.results, indent=2, default=str))
        log(f"raw results: {dump}")
        self.report()

    def report(self) -> None:
        args, r = self.args, self.results
        print()
        print("=" * 100)
        print("ps-hub processing benchmark")
        print("=" * 100)
        cpu = cpu_model() or platform.processor() or "?"
        print(f"machine      : {platform.node()}  nproc={os.cpu_count()}  cpu={cpu}")
        print(f"python/odoo  : {platform.python_version()}  {odoo_root()}")
        print(f"load (start) : {self.load_start}")
        print(f"load (end)   : {self.load_end}")
        print(f"other benches: {'; '.join(self.notes)}")
        print(f"settings     : db={self.db} light={args.light} deals={args.deals} queue_job light="
              f"{args.queue_job_light or args.light} deals={args.queue_job_deals or args.deals} "
              f"reuse_db={args.reuse_db}; "
              f"servers --workers=2; hub --max-cron-threads=2 (2 worker crons, batch {BATCH}); bare ORM: one "
              f"odoo shell process, no server, commit per {BATCH}; queue_job --load=base,web,queue_job channels "
              "root:2 --max-cron-threads=0; fake HubSpot in the bench process (no latency); phase limit "
              f"{PHASE_LIMIT:.0f} s; measured part {self.total_s:.0f} s")
        stand_in = ("VACUUM (ANALYZE) of the database before each throughput phase (not timed)"
                    if self.vacuum_stand_in else "not played by the bench")
        print(f"autovacuum   : PostgreSQL autovacuum={self.autovacuum}; {stand_in}")
        if args.no_queue_job:
            self.queue_job_note += " (its phases not run: --no-queue-job)"
        print(f"queue_job    : {self.queue_job_note}" + ("" if self.queue_job else
                                                          f"; comparison skipped. To run it, {QUEUE_JOB_HOWTO}"))
        print()
        print("1. Throughput (hub: trigger -> all events final; bare ORM: first batch -> last commit, in its process; "
              "queue_job: enqueue commit -> all jobs final; polled every 0.25 s, DB-timestamp figure in brackets)")
        header = f"{'workload':<8} {'system':<10} {'N':>6} {'done':>6} {'seconds':>8} {'ev/s':>8}  correctness"
        print(header)
        for kind, label in (("light", "(a)"), ("deal", "(b)")):
            rates = {}
            for system in ("hub", "bare", "qj"):
                res = r.get(f"{system}_{kind}")
                if res is None:
                    continue
                if system == "bare":
                    done = res["created"] if res["correct"] else 0
                    rate = res["n"] / res["elapsed"] if res["elapsed"] and res["correct"] else float("nan")
                    check = (f"partners={res['partners']}/{res['n']}" if kind == "light" else
                             f"sale orders={res['orders']}/{res['n']} with project={res['with_project']}")
                    check = ("OK  " if res["correct"] else "FAIL ") + check + (
                        f" created={res['created']} written={res['written']} process CPU={res['cpu']:.1f} s "
                        f"({1000 * res['cpu'] / res['n']:.1f} ms/event)")
                    rates[system] = rate
                    print(f"{label + ' ' + kind:<8} {'bare ORM':<10} {res['n']:>6} {done:>6} {res['elapsed']:>8.1f} "
                          f"{rate:>8.1f}  {check}")
                    continue
                rate = res["done"] / res["elapsed"] if res["elapsed"] else float("nan")
                rates[system] = rate
                if kind == "light":
                    check = f"partners upserted={res['partners']}/{res['n']}"
                else:
                    check = f"sale orders={res['orders']}/{res['n']} with project={res['with_project']}"
                check += f" states={res['states']}"
                if system == "hub":
                    check += f" reasons={res['reasons']} max_attempts={res['max_attempts']}"
                    check += f" handler avg={res['handler_avg_ms'] or 0:.1f} ms"
                else:
                    check += f" retried_jobs={res['jobs_retried']} max_retry={res['max_retry']}"
                ok = res["correct"] and res["done"] == res["n"]
                check = ("OK  " if ok else "FAIL ") + check
                trunc = " TRUNCATED" if res["truncated"] else ""
                check += f" (by DB timestamps {res['db_elapsed']:.1f} s)"
                print(f"{label + ' ' + kind:<8} {'hub' if system == 'hub' else 'queue_job':<10} {res['n']:>6} "
                      f"{res['done']:>6} {res['elapsed']:>8.1f} {rate:>8.1f}  {check}{trunc}")
            ratio = rates["hub"] / rates["bare"] if rates.get("bare") else float("nan")
            goal = BARE_GOALS[kind]
            print(f"{'':<8} ratio hub/bare ORM = {ratio:.2f}x   goal >= {goal}x   "
                  f"{'PASS' if ratio >= goal else 'FAIL'}")
            if "qj" in rates:
                qj_ratio = rates["hub"] / rates["qj"] if rates["qj"] else float("nan")
                print(f"{'':<8} ratio hub/queue_job = {qj_ratio:.2f}x   (reported, no goal)")
            else:
                print(f"{'':<8} ratio hub/queue_job: skipped (queue_job {self.queue_job_note})")
        for key in ("hub_light", "hub_deal", "qj_light", "qj_deal"):
            if key in r and r[key]["truncated"]:
                print(f"   note: {key} did not finish within {PHASE_LIMIT:.0f} s: rate = events done / elapsed")
        print()
        o = r["overhead"]
        print(f"2. Hub overhead per event (one process, {o['deal']['worker']}._cron_process_events(limit=50), "
              f"handler timed by wrapper: {o['deal']['handler_api']}, {o['light']['handler_api']})")
        if o["foreign_open"]:
            print(f"   note: {o['foreign_open']} open events of other connectors were in the queue at start")
        for kind, label in (("deal", "(b) deal  "), ("light", "(a) light ")):
            d = o[kind]
            print(f"   {label} N={d['n']} total={d['total']:.2f} s handler={d['handler']:.2f} s "
                  f"(handled {d['handled']}, calls {d['calls']}) mean handler={d['mean_handler_ms']:.2f} ms "
                  f"overhead={d['per_event_ms']:.2f} ms/event = {d['pct']:.1f}% of handler  goal < 10%  "
                  f"{'PASS' if d['pct'] < 10 else 'FAIL'}{'' if kind == 'deal' else ' (goal is for deals)'}  "
                  f"states={d['states']}")
        print()
        lat = r["latency"]
        print("3. Latency at a fifth of the hub deal capacity (signed single-event POSTs, crons active)")
        print(f"   rate={lat['rate']:.2f}/s sent={lat['sent']} in {lat['send_s']:.1f} s http={lat['statuses']} "
              f"events={lat['states']}")
        print(f"   latency_ms from the DB (received->done, n={lat['n']}): p50={lat['p50']:.2f} s "
              f"p95={lat['p95']:.2f} s p99={lat['p99']:.2f} s max={lat['max']:.2f} s   goal p95 < 2 s  "
              f"{'PASS' if lat['p95'] < 2 else 'FAIL'}")
        print(f"   (latency_ms is taken on the database clock; {lat['negative']} negative values; "
              "cross-check below)")
        print(f"   bench-measured POST sent -> seen final (poll 0.1 s, n={lat['own_n']}): p50={lat['own_p50']:.2f} s "
              f"p95={lat['own_p95']:.2f} s p99={lat['own_p99']:.2f} s max={lat['own_max']:.2f} s   goal p95 < 2 s  "
              f"{'PASS' if lat['own_p95'] < 2 else 'FAIL'}")
        print("=" * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light", type=int, default=5000, help="company.propertyChange events (default 5000)")
    parser.add_argument("--deals", type=int, default=1000, help="closed-won deals (default 1000)")
    parser.add_argument("--no-queue-job", action="store_true",
                        help="skip the queue_job phases (queue_job still goes on the addons path when found, "
                             "for a database that has it installed)")
    parser.add_argument("--queue-job-light", type=int, metavar="N",
                        help="light events for queue_job (default --light): it runs them ~30x slower than the hub")
    parser.add_argument("--queue-job-deals", type=int, metavar="N", help="deals for queue_job (default --deals)")
    parser.add_argument("--db", default="ps_hub_bench_proc")
    parser.add_argument("--reuse-db", action="store_true", help="skip the install (the data setup still runs)")
    parser.add_argument("--queue-job-path", metavar="DIR",
                        help=f"folder holding OCA queue_job 19.0 (or the addon itself), for the comparison; default "
                             f"${QUEUE_JOB_ENV}, else a queue_job importable as odoo.addons.queue_job; without it "
                             "the comparison is skipped")
    parser.add_argument("--drain", action="store_true",
                        help="only the backlog drain: --drain-large events vs --drain-small (db ps_hub_bench_drain)")
    parser.add_argument("--drain-small", type=int, default=5000, help="small backlog (default 5000)")
    parser.add_argument("--drain-large", type=int, default=200_000, help="large backlog (default 200000)")
    parser.add_argument("--vacuum", choices=("auto", "on", "off"), default="auto",
                        help="VACUUM (ANALYZE) as autovacuum would, when PostgreSQL's is off (auto, the default), "
                             "always (on) or never (off): before each throughput phase, or before and during "
                             "each drain")
    args = parser.parse_args()
    if args.drain:
        if args.db == parser.get_default("db"):
            args.db = "ps_hub_bench_drain"
        Bench(args).run_drain_mode()
    else:
        Bench(args).run()


if __name__ == "__main__":
    main()
