"""19.0.1.2.0: ps_hub_event.connector_id and company_id lose their foreign keys.

Each insert locked the connector and company rows that every delivery shares (a
``FOR KEY SHARE`` per foreign key); the ORM keeps their integrity instead (see
_Many2oneWithoutForeignKey in models/ps_hub_event.py). Odoo adds foreign keys but never
drops one whose field no longer asks for it.
"""

DROPPED = ("ps_hub_event_connector_id_fkey", "ps_hub_event_company_id_fkey")


def migrate(cr, version):
    if not version:
        return
    for name in DROPPED:
        cr.execute(f'ALTER TABLE ps_hub_event DROP CONSTRAINT IF EXISTS "{name}"')
    cr.execute("DELETE FROM ir_model_constraint WHERE name IN %s AND type = 'f'", (DROPPED,))
