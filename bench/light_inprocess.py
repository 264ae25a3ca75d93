"""Light-event processing rate of one worker, in one process (before/after comparisons).

Run inside ``odoo shell`` on a database where ps_integration_hub and ps_quote_to_cash are
installed, with the worker crons of no server running on it::

    python3 -m odoo shell -c .run/bench.conf -d ps_hub_new --log-level=warn < bench/light_inprocess.py

It starts a fake HubSpot in the process, stores 1,000 company.propertyChange events of
1,000 companies HubSpot has and Odoo does not (each read, matched and created), drains them
with one call of the worker entry point, then 1,000 changes of the same, now bound, companies
(each customer written), and prints events/s for each. The script runs on the engine of
issue 7 (``ps.hub.engine``) and on the one before it (``ps.hub.event``), so two checkouts
are compared by running it against a database of each, alternately, on the same machine.
"""
# ruff: noqa: F821 - odoo shell's env

import json
import random
import time

from odoo.addons.ps_integration_hub.services import parsers

from ps_hub_fakes import FakeHubSpot

N = 1000
fake = FakeHubSpot(token="light-token").start()
Event = env["ps.hub.event"]
Worker = env["ps.hub.engine"] if "ps.hub.engine" in env else Event
Connector = env["ps.hub.connector"]
connector = Connector.search([("name", "=", "bench light in-process")], limit=1) or Connector.create({
    "name": "bench light in-process", "system": "hubspot", "auth_type": "bearer", "base_url": fake.base_url,
    **({"environment": "production"} if "environment" in Connector._fields else {}),
})
connector.base_url = fake.base_url
connector.auth_secret = "light-token"
for xmlid in ("ir_cron_process_events_1", "ir_cron_process_events_2"):
    env.ref("ps_integration_hub." + xmlid).active = False
if "ps.hub.event.type" in env:
    env["ps.hub.event.type"].search([("system", "=", "hubspot")])._hub_switch(connector)
env.cr.commit()
base = random.randint(10**6, 10**8)
company_ids = [base + i for i in range(N)]
for company_id in company_ids:
    fake.add_company(company_id)
for phase in ("new companies (read, matched, created)", "bound companies (written)"):
    for start in range(0, N, 100):
        body = json.dumps([{
            "eventId": random.randint(10**9, 10**12), "subscriptionType": "company.propertyChange",
            "objectId": company_ids[start + j], "propertyName": "name",
            "propertyValue": f"{phase[0]} {start + j}", "occurredAt": 1763632800000,
        } for j in range(100)])
        Event._hub_enqueue(connector, parsers.parse_delivery("hubspot", body.encode(), {}))
    env.cr.commit()
    t0 = time.monotonic()
    Worker._cron_process_events()
    took = time.monotonic() - t0
    env.cr.execute("SELECT count(*) FROM ps_hub_event WHERE connector_id = %s AND state != 'done'", [connector.id])
    print(f"LIGHT {phase}: {N} events in {took:.2f} s = {N / took:.1f} events/s; not done: {env.cr.fetchone()[0]}")
fake.stop()
