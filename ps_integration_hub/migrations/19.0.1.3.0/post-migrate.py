"""19.0.1.3.0: ps_hub_event.event_type_id loses its foreign key.

Each insert locked the event type row that every delivery of the type shares (a ``FOR KEY
SHARE``), as the connector and company rows were until 19.0.1.2.0; the ORM keeps its
``ondelete="set null"`` instead (PsHubEventType.unlink; see _Many2oneWithoutForeignKey in
models/ps_hub_event.py). Odoo adds foreign keys but never drops one whose field no longer
asks for it.
"""

DROPPED = ("ps_hub_event_event_type_id_fkey",)


def migrate(cr, version):
    if not version:
        return
    for name in DROPPED:
        cr.execute(f'ALTER TABLE ps_hub_event DROP CONSTRAINT IF EXISTS "{name}"')
    cr.execute("DELETE FROM ir_model_constraint WHERE name IN %s AND type = 'f'", (DROPPED,))
