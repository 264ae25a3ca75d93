"""Play HubSpot once against a running demo: a signed closed-won delivery, then wait for the
project, and for the push of the confirmed order back to the HubSpot deal."""

import argparse
import configparser
import json
import sys
import time

import psycopg2
import requests

from ps_hub_fakes import load_fixture
from ps_hub_fakes.signing import hubspot_headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, default=8069)
    parser.add_argument("--secret", required=True, help="the HubSpot connector's signing secret")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--hubspot-url", default="http://127.0.0.1:8071", help="the fake HubSpot")
    parser.add_argument("--hubspot-token", default="demo-hubspot-token")
    args = parser.parse_args()
    conf = configparser.ConfigParser()
    conf.read(args.config)
    opts = conf["options"]
    conn = psycopg2.connect(dbname=args.db, host=opts.get("db_host"), port=opts.get("db_port"),
                            user=opts.get("db_user"))
    conn.autocommit = True
    with conn.cursor() as cr:
        cr.execute("SELECT c.inbound_token FROM ps_hub_connector c JOIN ir_model_data d ON d.res_id = c.id "
                   "AND d.model = 'ps.hub.connector' AND d.name = 'ps_hub_connector_demo_hubspot'")
        token = cr.fetchone()[0]
    base = f"http://localhost:{args.port}"
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            if requests.get(f"{base}/web/health", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            print("Odoo did not start: see .run/demo-odoo.log", file=sys.stderr)
            return 1
        time.sleep(0.5)
    url = f"{base}/ps_hub/in/{token}"
    body = load_fixture("hubspot/webhook_deal_closedwon.json").encode()
    ts = int(time.time() * 1000)
    response = requests.post(url, data=body, timeout=10, headers={
        "Content-Type": "application/json", **hubspot_headers(args.secret, url, body, ts)})
    print(f"HubSpot delivered a signed closed-won deal: HTTP {response.status_code} {response.text}")
    lost = json.dumps([{"eventId": 3817561099, "subscriptionType": "deal.propertyChange", "objectId": 19077099,
                        "propertyName": "dealstage", "propertyValue": "closedwon", "portalId": 8765432,
                        "occurredAt": ts}]).encode()
    response = requests.post(url, data=lost, timeout=10, headers={
        "Content-Type": "application/json", **hubspot_headers(args.secret, url, lost, ts)})
    print(f"HubSpot delivered a closed-won for a deal it no longer has: HTTP {response.status_code} "
          "(it lands on Integration Hub > Exceptions)")
    forged = requests.post(url, data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": str(ts),
        "X-HubSpot-Signature-v3": "forged"})
    print(f"A forged copy was refused: HTTP {forged.status_code}")
    with conn.cursor() as cr:
        while time.monotonic() < deadline:
            # HubSpot idempotency keys are <portalId>:<eventId>
            cr.execute("SELECT state, res_id, last_error FROM ps_hub_event "
                       "WHERE idempotency_key = '8765432:3817561001'")
            state, order_id, error = cr.fetchone()
            if state not in ("pending", "processing", "retry"):
                break
            time.sleep(0.5)
        if state != "done":
            print(f"The deal ended in state {state}: {error}", file=sys.stderr)
            return 1
        cr.execute("SELECT so.name, p.name, so.amount_untaxed, so.state, "
                   "string_agg(DISTINCT pr.name->>'en_US', ', ') FROM sale_order so "
                   "JOIN res_partner p ON p.id = so.partner_id "
                   "LEFT JOIN sale_order_line sol ON sol.order_id = so.id "
                   "LEFT JOIN project_project pr ON pr.sale_line_id = sol.id "
                   "WHERE so.id = %s GROUP BY so.id, p.id", [order_id])
        order, customer, amount, order_state, projects = cr.fetchone()
        print(f"Customer {customer}: sale order {order} ({order_state}, {amount:,.2f}), project {projects!r}")
        # the confirmation set off the demo's automation rule: a push of the order to its deal,
        # queued with it (the outbox) and sent by the hub's worker
        while time.monotonic() < deadline:
            cr.execute("SELECT state, external_id, last_error FROM ps_hub_event WHERE direction = 'out' "
                       "AND res_model = 'sale.order' AND res_id = %s ORDER BY id DESC LIMIT 1", [order_id])
            push = cr.fetchone()
            if push and push[0] not in ("pending", "processing", "retry"):
                break
            time.sleep(0.5)
        if not push or push[0] != "done":
            print(f"The push of the order to HubSpot ended as {push}", file=sys.stderr)
            return 1
        deal = requests.get(f"{args.hubspot_url}/crm/v3/objects/deals/{push[1]}", timeout=10,
                            params={"properties": "odoo_order_number,odoo_order_amount,odoo_order_status"},
                            headers={"Authorization": f"Bearer {args.hubspot_token}"}).json()
        shown = {k: v for k, v in deal.get("properties", {}).items() if k.startswith("odoo_")}
        print(f"Odoo pushed the order back to HubSpot deal {push[1]}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
