{
    "name": "ps-hub test vendor: Acme CRM",
    "summary": "A vendor system added to the Integration Hub by extension only, for the tests",
    "description": "Adds the fictitious Acme CRM as a connector system: its own signature scheme, "
    "content type, parser and workspace check, through the connector's extension hooks, and an event type with "
    "its handler, as data. Installed in the test "
    "database only (scripts/test); never in a demo or production database.",
    "version": "19.0.1.0.0",
    "category": "Hidden/Tests",
    "license": "LGPL-3",
    "author": "ps-hub",
    "website": "https://example.com/ps-hub",
    "depends": ["ps_integration_hub"],
    "data": [
        "views/ps_hub_connector_views.xml",
        "data/ps_hub_event_type_data.xml",
    ],
    "installable": True,
}
