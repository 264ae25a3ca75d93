"""19.0.1.1.0: ps_hub_event and ps_hub_audit_log keep only the indexes the hub reads.

Odoo keeps a column index whose field lost ``index=True``; these cost every event an entry
at ingest, claim and outcome, and no query of the hub reads them.
"""

DROPPED = {
    "ps_hub_event": ("connector_id", "company_id", "event_type", "event_type_id", "correlation_id", "state", "reason"),
    "ps_hub_audit_log": ("connector_id", "company_id"),
}


def migrate(cr, version):
    if not version:
        return
    for table, columns in DROPPED.items():
        for column in columns:
            cr.execute(f'DROP INDEX IF EXISTS "{table}__{column}_index"')
