"""Two worker processes create the same new customer at once: one partner, every order on it.

A new customer is known to HubSpot twice (two companies, one VAT written two ways), and
each company has several closed-won deals. Two Python processes, each with its own Odoo
registry and cursor, run the cron worker one event per batch at the same moment, against a
fake HubSpot slow enough that both reach the new customer before either commits. Odoo
works in REPEATABLE READ: without serialization, the later one cannot see the customer the
other one just created, and makes a second one (or fails on the binding's unique index).
"""

import json
import random
import subprocess

N_DEALS = 8

WORKER = """
import sys, time

Event = env["ps.hub.engine"]
print("READY", flush=True)
sys.stdin.readline()  # the test starts both workers at once
deadline = time.monotonic() + 150
while time.monotonic() < deadline:
    Event._cron_process_events(limit=1)
    cr.execute("SELECT count(*) FROM ps_hub_event WHERE connector_id = %%s "
               "AND state IN ('pending', 'retry', 'processing')", [%(cid)d])
    if not cr.fetchone()[0]:
        break
    cr.commit()
    time.sleep(0.2)  # what is left waits for its retry time
emit("done")
"""


def test_two_workers_create_one_new_customer_once(
    db, odoo_script, odoo_process, fake_hubspot, hub_connector, q2c_product, closed_won, tmp_path, event_rows,
    wait_ready,
):
    base = random.randint(100, 899) * 10_000_000
    vat = f"NL{random.randint(10**8, 10**9 - 1)}B01"
    companies = (str(base + 1), str(base + 2))
    fake_hubspot.add_company(companies[0], "Contoso Nederland B.V.", vat_number=vat,
                             domain=f"contoso-{base}.example")
    fake_hubspot.add_company(companies[1], "Contoso NL", vat_number=f"{vat[:2].lower()} {vat[2:6]}.{vat[6:]}",
                             domain=f"contoso-nl-{base}.example")
    deal_ids = []
    for i in range(N_DEALS):
        deal_id = str(base + 100 + i)
        fake_hubspot.add_deal(
            deal_id, companies[i % 2], None,
            [{"name": "Consulting T&M", "hs_sku": "PS-CONSULT-TM", "quantity": 10, "price": 150}],
            legal_entity="", deal_currency_code="", payment_terms="")
        deal_ids.append(deal_id)
    fake_hubspot.latency = 0.15  # each deal reads HubSpot 3 times: both workers are mid-deal together

    connector = hub_connector(fake_hubspot.base_url, "HubSpot concurrent customer")
    cid = connector["id"]
    events = [closed_won(8_000_000 + i, deal_id) for i, deal_id in enumerate(deal_ids)]
    odoo_script(f"""
        from odoo.addons.ps_integration_hub.services import parsers
        connector = env["ps.hub.connector"].browse({cid})
        connector.write({{"retry_backoff_base": 1, "retry_backoff_cap": 2, "retry_max_attempts": 8}})
        body = json.dumps(json.loads({json.dumps(events)!r})).encode()
        ids, duplicates = env["ps.hub.event"]._hub_enqueue(connector, parsers.parse_delivery("hubspot", body))
        assert len(ids) == {N_DEALS} and not duplicates
    """)

    workers = []
    try:
        for n in (1, 2):
            log = (tmp_path / f"worker{n}.log").open("w+")
            workers.append((odoo_process(WORKER % {"cid": cid}, stdin=subprocess.PIPE, stderr=log), log))
        for proc, log in workers:
            wait_ready(proc, log, timeout=90)
        for proc, _log in workers:
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        for proc, log in workers:
            proc.communicate(timeout=180)
            log.seek(0)
            assert proc.returncode == 0, f"worker failed:\n{log.read()[-4000:]}"
    finally:
        for proc, log in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()

    rows = event_rows(db, cid)
    assert sorted(r[1] for r in rows) == ["done"] * N_DEALS, [r for r in rows if r[1] != "done"]
    partners = db.all(
        "SELECT id FROM res_partner WHERE regexp_replace(upper(vat), '[^[:alnum:]]', '', 'g') = %s", [vat])
    assert len(partners) == 1, f"{len(partners)} partners for one customer"
    bound = db.all("SELECT external_id, res_id FROM ps_hub_binding WHERE connector_id = %s "
                   "AND external_model = 'company'", [cid])
    assert dict(bound) == dict.fromkeys(companies, partners[0][0]), "both HubSpot companies bound to it"
    orders = db.all("SELECT o.partner_id, o.state FROM sale_order o WHERE o.id IN %s",
                    [tuple(r[7] for r in rows)])
    assert orders == [(partners[0][0], "sale")] * N_DEALS
    # the two workers did meet on the new customer: one of them waited, and retried
    busy = db.one("SELECT count(*) FROM ps_hub_audit_log WHERE connector_id = %s "
                  "AND after->>'reason' = 'customer_busy'", [cid])
    print(f"\n{N_DEALS} deals of one new customer by 2 workers: {busy} customer_busy retries")
    assert busy >= 1, "the workers never met: the test did not exercise concurrent creation"
