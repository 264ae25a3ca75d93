{
    "name": "ps-hub bench: durable-write floor",
    "summary": "The cheapest durable webhook Odoo can serve, for bench/ingest.py to measure against",
    "description": "One route, POST /ps_hub_bench/floor, that stores the raw body of the request in a "
    "one-column table and answers 200: Odoo's dispatch, one INSERT, one commit. bench/ingest.py installs "
    "it in its own database to measure the floor under every durable delivery route; never install it "
    "anywhere else.",
    "version": "19.0.1.0.0",
    "category": "Hidden/Tests",
    "license": "LGPL-3",
    "author": "ps-hub",
    "website": "https://example.com/ps-hub",
    "depends": ["web"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
}
