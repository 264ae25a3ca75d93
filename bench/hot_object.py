"""Busy-object benchmark of the ps-hub event queue (Odoo 19).

One HubSpot company gets --hot events (company.propertyChange, default 20,000), queued
ahead of --others events of as many other companies (default 1,000). All companies are
bound to customers already, so the handler writes the changed value and calls no vendor:
what is measured is the queue, not HubSpot.

It prints:
1. the cost of one claim (median of --probes claims of --batch events, each rolled back)
   with only the other companies queued, then with the busy company's events ahead of
   them; and, on the same data and interleaved with it (so that both meet the same load),
   the claim the hub used before its events were held (every queued event checked
   against the earlier events of its object);
2. the drain of the whole queue by one worker (`ps.hub.engine._cron_process_events` in
   one process, committing each batch as the cron does): the time until the busy
   company's last event is done, the time until all are, and the number of claims;
3. the order check: the busy company's events were done in id order (no event done
   before an earlier one), and its customer holds the value of the last event.

    python3 bench/hot_object.py                    # install ps_integration_hub + ps_quote_to_cash, run
    python3 bench/hot_object.py --reuse-db         # keep the database of an earlier run
    python3 bench/hot_object.py --hot 5000 --others 500

Needs Odoo 19.0 importable by python3 and PostgreSQL (user odoo, or PGUSER/PGHOST).
Log of the shell: .run/bench-hot-object.log.
"""

import argparse
import json
import os
import sys
import time

import _common
from _common import log

CONF = _common.RUN_DIR / "bench_hot_object.conf"

SCRIPT = r"""
import json, statistics, time
from odoo.addons.ps_integration_hub.models.ps_hub_engine import HEAD_WEIGHT
from odoo.addons.ps_integration_hub.services import parsers
from odoo.tools import SQL

HOT, OTHERS, BATCH, PROBES = %(hot)d, %(others)d, %(batch)d, %(probes)d
Engine, Event = env['ps.hub.engine'], env['ps.hub.event']
for xmlid in ('ir_cron_process_events_1', 'ir_cron_process_events_2'):
    env.ref('ps_integration_hub.' + xmlid).active = False
Connector = env['ps.hub.connector'].with_context(active_test=False)
connector = Connector.search([('name', '=', 'bench hot object')], limit=1)
if connector:
    env.cr.execute("DELETE FROM ps_hub_audit_log WHERE connector_id = %%s", [connector.id])
    env.cr.execute("DELETE FROM ps_hub_event WHERE connector_id = %%s", [connector.id])
    env.cr.execute("DELETE FROM ps_hub_binding WHERE connector_id = %%s", [connector.id])
else:
    connector = Connector.create({'name': 'bench hot object', 'system': 'hubspot', 'environment': 'production',
                                  'base_url': 'http://127.0.0.1:9', 'auth_type': 'none'})
HOT_ID = 1
companies = [HOT_ID] + [1000 + i for i in range(OTHERS)]
partners = env['res.partner'].create([{'name': 'bench company %%d' %% c, 'is_company': True} for c in companies])
for company_id, partner in zip(companies, partners):
    env['ps.hub.binding']._hub_bind(connector, 'company', str(company_id), partner)
env.cr.commit()

def enqueue(pairs, start):
    for i in range(0, len(pairs), 100):
        body = json.dumps([{'eventId': start + i + j, 'subscriptionType': 'company.propertyChange',
                            'objectId': obj, 'propertyName': 'name', 'propertyValue': value,
                            'occurredAt': 1763632800000} for j, (obj, value) in enumerate(pairs[i:i + 100])])
        Event._hub_enqueue(connector, parsers.parse_delivery('hubspot', body.encode(), {}))
    env.cr.commit()

# the claim before events were held (75f8610): every queued event checked against the earlier
# events of its object, one event of an object per claim
OLD_CLAIM = SQL('''
    UPDATE ps_hub_event SET state = 'processing', claim_token = 'probe',
           claimed_at = statement_timestamp() AT TIME ZONE 'UTC', attempts = attempts + 1
     WHERE id IN (
        SELECT e.id FROM ps_hub_event e
         WHERE e.state IN ('pending', 'retry') AND e.direction = 'in'
           AND e.next_attempt_at <= statement_timestamp() AT TIME ZONE 'UTC'
           AND (e.ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM ps_hub_event p
                 WHERE p.connector_id = e.connector_id AND p.ordering_key = e.ordering_key
                   AND p.id < e.id AND p.state IN ('pending', 'retry', 'processing')))
         ORDER BY e.next_attempt_at, e.id LIMIT %%s FOR UPDATE SKIP LOCKED)
    RETURNING id''', BATCH)

def claim_ms():
    # medians (now, before) of PROBES claims each, interleaved so that both meet the same load
    took = {True: [], False: []}
    for _probe in range(PROBES):
        for old in (False, True):
            t0 = time.perf_counter()
            if old:
                env.cr.execute(OLD_CLAIM)
                env.cr.fetchall()
            else:
                Engine._hub_claim(BATCH, 'probe')
            took[old].append((time.perf_counter() - t0) * 1000)
            env.cr.rollback()
    return statistics.median(took[False]), statistics.median(took[True])

others = [(1000 + i, 'other %%d' %% i) for i in range(OTHERS)]
enqueue(others, 10_000_000)
env.cr.execute("ANALYZE ps_hub_event")
env.cr.commit()
print('BENCH claim_others_only_ms=%%.2f\nBENCH old_claim_others_only_ms=%%.2f' %% claim_ms())
env.cr.execute("DELETE FROM ps_hub_event WHERE connector_id = %%s", [connector.id])
env.cr.commit()
# first a short backlog behind the busy company (what one claim can take of it, and a
# hundred more), then the rest of its events: the claim must cost the same with both
SHORT = min(HOT, BATCH * HEAD_WEIGHT + 100)
enqueue([(HOT_ID, 'value %%d' %% i) for i in range(SHORT)], 0)
enqueue(others, 10_000_000)
env.cr.execute("ANALYZE ps_hub_event")
env.cr.commit()
print('BENCH short=%%d' %% SHORT)
print('BENCH claim_hot_short_ms=%%.2f\nBENCH old_claim_hot_short_ms=%%.2f' %% claim_ms())
enqueue([(HOT_ID, 'value %%d' %% i) for i in range(SHORT, HOT)], SHORT)
env.cr.execute("ANALYZE ps_hub_event")
env.cr.commit()
env.cr.execute("SELECT count(*) FILTER (WHERE held) FROM ps_hub_event WHERE connector_id = %%s", [connector.id])
print('BENCH held=%%d' %% env.cr.fetchone()[0])
print('BENCH claim_hot_ahead_ms=%%.2f\nBENCH old_claim_hot_ahead_ms=%%.2f' %% claim_ms())

claims = []
original = type(Engine)._hub_claim
def counting(model, limit, token):
    ids = original(model, limit, token)
    if ids:
        claims.append(len(ids))
    return ids
type(Engine)._hub_claim = counting
t0 = time.monotonic()
Engine._cron_process_events()
total = time.monotonic() - t0
type(Engine)._hub_claim = original
env.cr.execute('''SELECT EXTRACT(EPOCH FROM max(done_at) FILTER (WHERE ordering_key = %%s) - min(claimed_at)),
                         count(*) FILTER (WHERE state = 'done'), count(*)
                    FROM ps_hub_event WHERE connector_id = %%s''', ['company:%%d' %% HOT_ID, connector.id])
hot_seconds, done, count = env.cr.fetchone()
env.cr.execute('''SELECT count(*) FROM (
                    SELECT done_at < lag(done_at) OVER (ORDER BY id) AS early FROM ps_hub_event
                     WHERE connector_id = %%s AND ordering_key = %%s) t WHERE early''',
               [connector.id, 'company:%%d' %% HOT_ID])
out_of_order = env.cr.fetchone()[0]
env.cr.execute("SELECT ordering_key FROM ps_hub_event WHERE connector_id = %%s LIMIT 1", [connector.id])
partner = partners[0]
partner.invalidate_recordset()
print('BENCH ordering_key=%%s' %% env.cr.fetchone()[0])
print('BENCH drain_s=%%.2f' %% total)
print('BENCH hot_drain_s=%%.2f' %% (hot_seconds or 0))
print('BENCH done=%%d' %% done)
print('BENCH count=%%d' %% count)
print('BENCH claims=%%d' %% len(claims))
print('BENCH mean_claim_size=%%.1f' %% (sum(claims) / max(len(claims), 1)))
print('BENCH out_of_order=%%d' %% out_of_order)
print('BENCH last_value_kept=%%d' %% (partner.name == 'value %%d' %% (HOT - 1)))
print('BENCH ok=1')
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="ps_hub_bench_hot")
    parser.add_argument("--reuse-db", action="store_true")
    parser.add_argument("--hot", type=int, default=20_000, help="events of the busy company")
    parser.add_argument("--others", type=int, default=1_000, help="other companies, one event each")
    parser.add_argument("--batch", type=int, default=50, help="claim size (the workers' batch_size)")
    parser.add_argument("--probes", type=int, default=21, help="claims timed for each median")
    args = parser.parse_args()
    _common.write_config(CONF, args.db)
    if not args.reuse_db:
        _common.create_db(CONF, args.db, "ps_integration_hub,ps_quote_to_cash")
    log(f"{args.hot} events of one company ahead of {args.others} of other companies; one worker drains them")
    t0 = time.monotonic()
    script = SCRIPT % {"hot": args.hot, "others": args.others, "batch": args.batch, "probes": args.probes}
    proc, values = _common.odoo_shell(CONF, args.db, script, timeout=3600)
    (_common.RUN_DIR / "bench-hot-object.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode or "ok" not in values:
        print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
        raise SystemExit("error: the odoo shell script failed (log: .run/bench-hot-object.log)")
    log(f"done in {time.monotonic() - t0:.0f} s")
    v = {k: float(x) if k != "ordering_key" else x for k, x in values.items()}
    print()
    print(f"Busy object: {args.hot} events of one company (held behind its first: {int(v['held'])}), "
          f"ahead of {args.others} other companies; claims of {args.batch}; load average {os.getloadavg()[0]:.2f}")
    print()
    short = int(v["short"])
    print(f"| claim (median of {args.probes}, rolled back) | others only, ms | busy company ahead, "
          f"{short} of its events queued, ms | {args.hot} queued, ms | {args.hot} ÷ {short} |")
    print("|---|---:|---:|---:|---:|")
    for label, key in (("now: heads only, held events out of the index", "claim"),
                       ("before: every queued event checked", "old_claim")):
        alone, short_ms, ahead = (v[f"{key}_others_only_ms"], v[f"{key}_hot_short_ms"],
                                  v[f"{key}_hot_ahead_ms"])
        print(f"| {label} | {alone:.2f} | {short_ms:.2f} | {ahead:.2f} | {ahead / short_ms:.1f}x |")
    print()
    print("A claim of the busy company's events now brings the head and up to "
          f"{args.batch} x HEAD_WEIGHT - HEAD_WEIGHT events behind it (a busy object fills the claim "
          f"instead of {args.batch} heads), so it is compared with the same claim over a short backlog.")
    print()
    print(f"Drain by one worker: all {int(v['count'])} events in {v['drain_s']:.1f} s "
          f"({v['count'] / v['drain_s']:.0f} events/s), {int(v['claims'])} claims of "
          f"{v['mean_claim_size']:.1f} events on average; the busy company's {args.hot} events "
          f"done {v['hot_drain_s']:.1f} s after the first claim")
    print(f"Order: {int(v['out_of_order'])} of the busy company's events done before an earlier one; "
          f"its customer holds the last value: {'yes' if v['last_value_kept'] else 'NO'}")
    print()
    goals = [
        (f"claim cost with {args.hot} events of the busy company queued <= 2x with {short} "
         "(independent of the backlog)", v["claim_hot_ahead_ms"] <= 2 * v["claim_hot_short_ms"]),
        ("the busy company's events drain in under 60 s", v["hot_drain_s"] < 60),
        ("claims carry consecutive events of one object (mean claim size > 1)", v["mean_claim_size"] > 1),
        ("order kept (none done before an earlier one, last value kept)",
         v["out_of_order"] == 0 and v["last_value_kept"] == 1),
        ("every event done", v["done"] == v["count"]),
    ]
    for label, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    print(json.dumps({"figures": v}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
