"""Dry-run benchmark of the field mappings (Odoo 19).

--events stored HubSpot company.propertyChange events (default 10,000) of --companies
companies bound to customers (default 2,000), changing their name, domain, city, zip and
phone. A draft of the seeded company mapping (names in upper case) is then applied to all
of them in two ways, alternately, --rounds times each, the ORM cache emptied before each:

1. the dry-run: ``ps.hub.mapping._hub_dry_run(events)``, what the dry-run wizard runs: the
   draft and the active version applied to each event, compared with each other and with
   the event's customer, nothing written;
2. for real without writing: the company handler's own path
   (``ps.q2c.hubspot.company.handler.process`` without its ``write``: ``_q2c_company_changes``
   with the draft active, ``_q2c_values_to_write`` and ``_q2c_note_mapping``).

It prints the median of each, the ratio and the goal (dry-run < 1.10x the real path), and
as information the wizard's run on the same events (the report stored as wizard lines).
Everything is done in one transaction that is rolled back: the database is left as it was.

    python3 bench/mapping_dry_run.py                     # install ps_integration_hub + ps_quote_to_cash, run
    python3 bench/mapping_dry_run.py --reuse-db --db ps_hub_x   # an installed database (nothing is kept in it)
    python3 bench/mapping_dry_run.py --events 2000 --rounds 3

Needs Odoo 19.0 importable by python3 and PostgreSQL (user odoo, or PGUSER/PGHOST).
Log of the shell: .run/bench-mapping-dry-run.log.
"""

import argparse
import json
import os
import sys
import time

import _common
from _common import log

CONF = _common.RUN_DIR / "bench_mapping_dry_run.conf"

SCRIPT = r"""
import json, statistics, time
from odoo.addons.ps_integration_hub.services import parsers

EVENTS, COMPANIES, ROUNDS = %(events)d, %(companies)d, %(rounds)d
Event = env['ps.hub.event']
connector = env['ps.hub.connector'].create({'name': 'bench mapping dry-run', 'system': 'hubspot',
                                            'environment': 'production', 'base_url': 'http://127.0.0.1:9',
                                            'auth_type': 'none'})
companies = [9000000 + i for i in range(COMPANIES)]
partners = env['res.partner'].create([{'name': 'bench company %%d' %% c, 'is_company': True, 'city': 'Berlin'}
                                      for c in companies])
for company_id, partner in zip(companies, partners):
    env['ps.hub.binding']._hub_bind(connector, 'company', str(company_id), partner)
PROPS = [('name', lambda i: 'Company %%d' %% i), ('domain', lambda i: 'c%%d.example' %% i),
         ('city', lambda i: 'Berlin' if i %% 2 else 'Hamburg'), ('zip', lambda i: '%%05d' %% i),
         ('phone', lambda i: '+49 30 %%07d' %% i)]
ids = []
for start in range(0, EVENTS, 100):
    body = json.dumps([{'eventId': 1 + i, 'subscriptionType': 'company.propertyChange',
                        'objectId': companies[i %% COMPANIES], 'propertyName': PROPS[i %% len(PROPS)][0],
                        'propertyValue': PROPS[i %% len(PROPS)][1](i), 'occurredAt': 1763632800000 + i}
                       for i in range(start, min(start + 100, EVENTS))])
    new_ids, _dup = Event._hub_enqueue(connector, parsers.parse_delivery('hubspot', body.encode(), {}))
    ids.extend(new_ids)
# stored events as the hub keeps them once done: state and record set
env.cr.execute('''UPDATE ps_hub_event e SET state = 'done', held = FALSE, res_model = 'res.partner', res_id = b.res_id
                    FROM ps_hub_binding b WHERE e.id IN %%s AND b.connector_id = e.connector_id
                     AND b.external_model = 'company' AND b.external_id = e.external_id''', [tuple(ids)])
env.invalidate_all()
v1 = env.ref('ps_quote_to_cash.mapping_hubspot_company')
draft = env['ps.hub.mapping'].browse(v1.action_new_draft()['res_id'])
draft.line_ids.filtered(lambda l: l.field_id.name == 'name').transform = 'upper'
handler = env['ps.q2c.hubspot.company.handler']

def dry_run():
    report = draft._hub_dry_run(Event.browse(ids), compare=v1)
    return sum(1 for row in report if row['changes'])

def for_real():
    events = Event.browse(ids)
    results, changes, _asked, mapped = handler._q2c_company_changes(events, read_unbound=False)
    to_write, _not_applied = handler._q2c_values_to_write(changes)  # process() writes these
    handler._q2c_note_mapping(events, results, mapped)
    return len(to_write)

# the draft must be the active version for the handler: activate it, the dry-run still
# compares it with version 1 (what the wizard shows before activation)
draft.action_activate()
env.flush_all()
for f in (dry_run, for_real):  # warm-up: compiled mappings, registry caches
    env.invalidate_all(); f()
times = {'dry_run': [], 'for_real': []}
counts = {}
PAIR = (('dry_run', dry_run), ('for_real', for_real))
for r in range(ROUNDS):
    for name, f in PAIR if r %% 2 == 0 else PAIR[::-1]:
        env.invalidate_all()
        t0 = time.perf_counter()
        counts[name] = f()
        times[name].append(time.perf_counter() - t0)
env.invalidate_all()
wizard = env['ps.hub.mapping.dry.run'].create({'mapping_id': draft.id, 'limit': EVENTS})
t0 = time.perf_counter()
wizard.action_run()
env.flush_all()
wizard_s = time.perf_counter() - t0
print('BENCH events=%%d' %% len(ids))
print('BENCH dry_run_s=%%.3f' %% statistics.median(times['dry_run']))
print('BENCH for_real_s=%%.3f' %% statistics.median(times['for_real']))
print('BENCH dry_run_min_s=%%.3f' %% min(times['dry_run']))
print('BENCH for_real_min_s=%%.3f' %% min(times['for_real']))
print('BENCH dry_run_all=%%s' %% ','.join('%%.3f' %% t for t in times['dry_run']))
print('BENCH for_real_all=%%s' %% ','.join('%%.3f' %% t for t in times['for_real']))
print('BENCH dry_run_changes=%%d' %% counts['dry_run'])
print('BENCH real_partners_to_write=%%d' %% counts['for_real'])
print('BENCH wizard_s=%%.3f' %% wizard_s)
print('BENCH wizard_lines=%%d' %% len(wizard.line_ids))
env.cr.rollback()
print('BENCH ok=1')
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="ps_hub_bench_mapping")
    parser.add_argument("--reuse-db", action="store_true")
    parser.add_argument("--events", type=int, default=10_000, help="stored company events")
    parser.add_argument("--companies", type=int, default=2_000, help="bound companies the events change")
    parser.add_argument("--rounds", type=int, default=9, help="timed runs of each, alternated; the median is kept")
    args = parser.parse_args()
    _common.write_config(CONF, args.db)
    if not args.reuse_db:
        _common.create_db(CONF, args.db, "ps_integration_hub,ps_quote_to_cash")
    log(f"{args.events} stored company events of {args.companies} customers: dry-run vs the handler's path")
    t0 = time.monotonic()
    script = SCRIPT % {"events": args.events, "companies": args.companies, "rounds": args.rounds}
    proc, values = _common.odoo_shell(CONF, args.db, script, timeout=3600)
    (_common.RUN_DIR / "bench-mapping-dry-run.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode or "ok" not in values:
        print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
        raise SystemExit("error: the odoo shell script failed (log: .run/bench-mapping-dry-run.log)")
    log(f"done in {time.monotonic() - t0:.0f} s")
    v = {k: (float(x) if "," not in x else x) for k, x in values.items()}
    ratio = v["dry_run_s"] / v["for_real_s"]
    print()
    print(f"Mapping dry-run: {int(v['events'])} stored company events of {args.companies} customers, "
          f"median of {args.rounds} runs each; load average {os.getloadavg()[0]:.2f}")
    print()
    print("| path | median s | best s | events/s (median) | runs (s) |")
    print("|---|---:|---:|---:|---|")
    print(f"| dry-run (draft and active version, compared with the records) | {v['dry_run_s']:.3f} | "
          f"{v['dry_run_min_s']:.3f} | {v['events'] / v['dry_run_s']:.0f} | {v['dry_run_all']} |")
    print(f"| for real without writing (company handler's path) | {v['for_real_s']:.3f} | "
          f"{v['for_real_min_s']:.3f} | {v['events'] / v['for_real_s']:.0f} | {v['for_real_all']} |")
    print()
    print(f"Ratio dry-run / for real: {ratio:.2f}x of the medians, "
          f"{v['dry_run_min_s'] / v['for_real_min_s']:.2f}x of the best runs.")
    print(f"The dry-run saw {int(v['dry_run_changes'])} events that would "
          f"change their customer; the handler would write {int(v['real_partners_to_write'])} customers.")
    print(f"Information: the wizard on all {int(v['wizard_lines'])} events, its report stored as lines, "
          f"took {v['wizard_s']:.2f} s.")
    print()
    ok = ratio < 1.10
    print(f"{'PASS' if ok else 'FAIL'}  a dry-run over {int(v['events'])} stored events takes less than 10% longer "
          f"than applying the same mapping for real without writing ({ratio:.2f}x)")
    print(json.dumps({"figures": v}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
