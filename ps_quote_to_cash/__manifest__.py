{
    "name": "Professional Services Quote to Cash",
    "summary": "Closed-won deals from HubSpot and Salesforce become customers, confirmed "
    "sale orders and projects",
    "version": "19.0.1.0.0",
    "category": "Sales",
    "license": "LGPL-3",
    "author": "ps-hub",
    "website": "https://example.com/ps-hub",
    "depends": ["ps_integration_hub", "sale_project", "base_automation"],
    "data": [
        "security/ir.model.access.csv",
        "data/ps_hub_event_type_data.xml",
        "data/ps_hub_ownership_rule_data.xml",
        "data/ps_hub_mapping_data.xml",
    ],
    "demo": ["demo/ps_quote_to_cash_demo.xml"],
    "installable": True,
}
