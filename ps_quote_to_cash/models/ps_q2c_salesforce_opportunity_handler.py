from odoo import models

from odoo.addons.ps_integration_hub.services import outcome as oc
from odoo.addons.ps_integration_hub.services.errors import HubError, IgnoreEvent, PermanentError

from ..services import salesforce


class PsQ2cSalesforceOpportunityHandler(models.AbstractModel):
    """Outbound message of a won Opportunity -> the Opportunity, its Account and products over
    REST -> customer, confirmed sale order and project."""

    _name = "ps.q2c.salesforce.opportunity.handler"
    _inherit = "ps.hub.handler"
    _description = "Quote to Cash: Salesforce won Opportunity"

    def process(self, events):
        """Each Opportunity read and applied on its own (a message names one Opportunity)."""
        results = {}
        Engagement = self.env["ps.q2c.engagement"]
        won_stages = Engagement._q2c_won_stages(salesforce.WON_STAGES)
        for event in events:
            context, mapping = {}, None
            try:
                with self.env.cr.savepoint():
                    found = self._q2c_read(event, context, won_stages)
                    if not isinstance(found, models.BaseModel):
                        # the mapping version that reads the Opportunity (none: the code reads it)
                        mapping = Engagement._q2c_mapping(event.connector_id, found).id
                        found = Engagement._q2c_apply(event, found)
            except (HubError, IgnoreEvent) as exc:
                results[event.id] = oc.of_exception(exc, event.attempts).noting(context).mapped_by(mapping)
                continue
            results[event.id] = oc.done(found, context).mapped_by(mapping)
        return results

    def _hub_mapping_source(self, event, mapping, payload=None):
        """The outbound message's Opportunity fields: those the administrator put in the message."""
        sobject = ((event.payload or {}) if payload is None else payload).get("sobject")
        return (sobject, True) if isinstance(sobject, dict) and mapping.external_object == "Opportunity" else None

    def _q2c_read(self, event, context, won_stages):
        """The order a replay already made, or the Opportunity read over REST as an engagement.
        ``won_stages``: the stage names that are won (``ps.q2c.engagement._q2c_won_stages``)."""
        sobject = (event.payload or {}).get("sobject") or {}
        opp_id = sobject.get("Id")
        if not salesforce.is_closed_won(sobject, won_stages):
            # nothing is made for it, so the message alone may say so
            raise IgnoreEvent(
                f"opportunity {opp_id} is at stage {sobject.get('StageName')!r}, not won (the message's "
                "IsWon is not true, and a won stage of the org's own counts once it is in the Deal stage "
                "value map, Integration Hub > Configuration > Value Maps, valued won)")
        try:
            query = salesforce.line_items_query(opp_id)
        except ValueError as exc:
            raise PermanentError(str(exc), reason="malformed") from None
        context["reference"] = sobject.get("Name") or f"Salesforce opportunity {opp_id}"
        existing = self.env["ps.hub.binding"]._hub_lookup(event.connector_id, "Opportunity", event.external_id)
        if existing:
            return existing
        return salesforce.read_won_opportunity(event.connector_id._hub_request, opp_id, query, context)
