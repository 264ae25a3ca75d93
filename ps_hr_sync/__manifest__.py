{
    "name": "Professional Services HR Sync",
    "summary": "HRIS (BambooHR first) -> employees, departments, managers, cost centers, leave",
    "version": "19.0.0.1.0",
    "category": "Human Resources",
    "license": "LGPL-3",
    "author": "ps-hub",
    "website": "https://example.com/ps-hub",
    "depends": ["ps_integration_hub", "hr"],
    "data": ["data/ps_hub_ownership_rule_data.xml", "data/ps_hub_value_map_data.xml"],
    "installable": True,
}
