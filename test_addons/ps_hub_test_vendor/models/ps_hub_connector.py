from odoo import api, fields, models

from odoo.addons.ps_integration_hub.services.signatures import SignatureError

from ..services import acme


class PsHubConnector(models.Model):
    """Acme CRM as a connector system: each inbound decision the hub leaves to the system
    is overridden for Acme only, and falls through to the hub for every other system."""

    _inherit = "ps.hub.connector"

    # Uninstalling deletes the Acme connectors; one that has events cannot be deleted (its
    # events restrict it), so the uninstall stops instead of dropping event history.
    system = fields.Selection(selection_add=[("acme", "Acme CRM")], ondelete={"acme": "cascade"})
    acme_workspace_id = fields.Char(
        "Acme Workspace ID", tracking=True,
        help="Deliveries of another Acme workspace are refused. Empty: any workspace.",
    )

    @api.model
    def _hub_inbound_fields(self):
        return [*super()._hub_inbound_fields(), "acme_workspace_id"]

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

    def _hub_check_delivery(self, delivery):
        if self.system != "acme":
            return super()._hub_check_delivery(delivery)
        # like Salesforce's organization check; a malformed delivery, whose workspace cannot
        # be told, is kept (it is signed with this connector's secret)
        expected = (self.acme_workspace_id or "").strip()
        if expected and delivery.organization_id not in (None, expected):
            raise SignatureError("delivery of another Acme workspace")
        return 0
