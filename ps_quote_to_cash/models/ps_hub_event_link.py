from odoo import models

# the records each quote-to-cash event type produces, and the external object type they are
# bound under (as the handlers bind them): what the exception desk may link such an event to
LINKS = {
    ("hubspot", "deal.propertyChange"): {"sale.order": "deal"},
    ("salesforce", "Opportunity.outbound_message"): {"sale.order": "Opportunity"},
}
HUBSPOT_COMPANY_LINKS = {"res.partner": "company"}


class PsHubEvent(models.Model):
    _inherit = "ps.hub.event"

    def _hub_linkable_models(self):
        linkable = dict(super()._hub_linkable_models())
        linkable.update(LINKS.get((self.system, self.event_type), {}))
        if self.system == "hubspot" and (self.event_type or "").startswith("company."):
            linkable.update(HUBSPOT_COMPANY_LINKS)
        return linkable
