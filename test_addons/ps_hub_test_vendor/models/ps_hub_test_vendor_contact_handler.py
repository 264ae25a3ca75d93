from odoo import models

from odoo.addons.ps_integration_hub.services import outcome as oc
from odoo.addons.ps_integration_hub.services.errors import PermanentError


class PsHubTestVendorContactHandler(models.AbstractModel):
    """acme.contact.updated -> the contact bound to the Acme contact, created or updated."""

    _name = "ps.hub.test.vendor.contact.handler"
    _inherit = "ps.hub.handler"
    _description = "Test vendor: Acme contact updated"

    def process(self, events):
        """One search of the bindings for the batch; each contact written in event order."""
        Binding = self.env["ps.hub.binding"]
        results = {}
        for event in events:
            email = ((event.payload or {}).get("object") or {}).get("email")
            if not email:
                results[event.id] = PermanentError("Acme contact without email", reason="malformed")
                continue
            partner = Binding._hub_lookup(event.connector_id, "contact", event.external_id)
            if partner:
                partner.email = email
            else:
                partner = self.env["res.partner"].create({"name": email, "email": email})
                Binding._hub_bind(event.connector_id, "contact", event.external_id, partner)
            results[event.id] = oc.done(partner, {"customer": email})
        return results
