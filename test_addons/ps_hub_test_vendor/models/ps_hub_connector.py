from odoo import fields, models

from ..services import acme


class PsHubConnector(models.Model):
    """Acme CRM as a connector system: each inbound decision the hub leaves to the system
    is overridden for Acme only, and falls through to the hub for every other system."""

    _inherit = "ps.hub.connector"

    # Uninstalling deletes the Acme connectors; one that has events cannot be deleted (its
    # events restrict it), so the uninstall stops instead of dropping event history.
    system = fields.Selection(selection_add=[("acme", "Acme CRM")], ondelete={"acme": "cascade"})

    def _hub_content_types(self):
        if self.system != "acme":
            return super()._hub_content_types()
        return acme.CONTENT_TYPES

    def _hub_verify_signature(self, httprequest, token, body):
        if self.system != "acme":
            return super()._hub_verify_signature(httprequest, token, body)
        return acme.verify(self._hub_signing_secrets(), body, httprequest.headers,
                           tolerance=self.signature_tolerance)

    def _hub_parser(self):
        if self.system != "acme":
            return super()._hub_parser()
        return acme.parse
