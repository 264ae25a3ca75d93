from odoo import fields, models


class PsHubConnectorEventType(models.Model):
    """Whether one connector runs one event type: a sandbox connector may take in deals
    without making orders from them."""

    _name = "ps.hub.connector.event.type"
    _description = "Event Type of a Connector"
    _order = "connector_id, event_type_id"
    _check_company_auto = True

    connector_id = fields.Many2one("ps.hub.connector", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="connector_id.company_id", store=True)
    event_type_id = fields.Many2one("ps.hub.event.type", required=True, ondelete="cascade")
    system = fields.Selection(related="event_type_id.system")
    code = fields.Char(related="event_type_id.code")
    handler_model = fields.Char(related="event_type_id.handler_model")
    enabled = fields.Boolean(
        "Runs", default=True,
        help="Off: this connector's events of the type are stored and ignored with the reason, "
             "not processed.",
    )

    _pair_unique = models.Constraint(
        "UNIQUE (connector_id, event_type_id)", "A connector has one setting per event type.")
