import dataclasses

from odoo import models

from odoo.addons.ps_integration_hub.services import outcome as oc
from odoo.addons.ps_integration_hub.services.errors import HubError, IgnoreEvent, PermanentError

from ..services import hubspot


class PsQ2cHubspotDealHandler(models.AbstractModel):
    """HubSpot deal.propertyChange to closed-won -> the deal read from HubSpot -> customer,
    confirmed sale order and project."""

    _name = "ps.q2c.hubspot.deal.handler"
    _inherit = "ps.hub.handler"
    _description = "Quote to Cash: HubSpot closed-won deal"

    def process(self, events):
        """The deals are read one by one; their orders are created and confirmed together (one
        create, one confirmation, one project generation)."""
        results, contexts, pending, repeats = {}, {}, [], {}
        first_of_deal = {}
        won_stages = self.env["ps.q2c.engagement"]._q2c_won_stages(hubspot.WON_STAGES)
        for event in events:
            context = contexts[event.id] = {}
            try:
                found = self._q2c_read(event, context, won_stages)
            except (HubError, IgnoreEvent) as exc:
                results[event.id] = oc.of_exception(exc, event.attempts).noting(context)
                continue
            if isinstance(found, models.BaseModel):
                results[event.id] = oc.done(found, context)
                continue
            deal = (event.connector_id.id, found.deal_id)
            if deal in first_of_deal:  # the same deal twice in one batch makes one order
                repeats[event.id] = first_of_deal[deal]
            else:
                first_of_deal[deal] = event.id
                pending.append((event, found))
        Engagement = self.env["ps.q2c.engagement"]
        applied = Engagement._q2c_apply_many(pending)
        for event, engagement in pending:
            # the mapping version that read the deal (none: the code read it)
            results[event.id] = oc.outcome_of(applied[event.id], event.attempts).noting(
                contexts[event.id]).mapped_by(Engagement._q2c_mapping(event.connector_id, engagement).id)
        for event_id, first_id in repeats.items():
            results[event_id] = dataclasses.replace(results[first_id], context=dict(results[first_id].context))
        return results

    def _hub_mapping_source(self, event, mapping, payload=None):
        """The webhook carries the changed property only (the deal itself is read from HubSpot)."""
        payload = (event.payload or {}) if payload is None else payload
        if not payload.get("propertyName"):
            return None
        return {"properties": {payload["propertyName"]: payload.get("propertyValue")}}, True

    def _q2c_read(self, event, context, won_stages):
        """The order a replay already made, or the deal read from HubSpot as an engagement.
        ``won_stages``: the stage ids that are won (``ps.q2c.engagement._q2c_won_stages``)."""
        payload = event.payload or {}
        if not hubspot.is_closed_won(payload, won_stages):
            message = (f"deal {payload.get('objectId')}: {payload.get('propertyName')} changed to "
                       f"{payload.get('propertyValue')!r}, not a closed-won")
            if hubspot.is_stage_change(payload):
                # most are moves between open stages; the one that matters is a custom
                # pipeline's won stage, whose id HubSpot chose and only the value map knows
                message += (" stage. A custom pipeline's won stage counts once it is in the Deal stage "
                            "value map (Integration Hub > Configuration > Value Maps): its stage id as "
                            "the vendor value, won as the Odoo value.")
            raise IgnoreEvent(message)
        deal_id = str(payload.get("objectId") or "")
        if not deal_id.isdigit():
            raise PermanentError(f"HubSpot deal id {deal_id!r} is not numeric", reason="malformed")
        existing = self.env["ps.hub.binding"]._hub_lookup(event.connector_id, "deal", event.external_id)
        if existing:
            return existing
        context["reference"] = f"HubSpot deal {deal_id}"  # until the deal's name is known
        extra = self.env["ps.q2c.engagement"]._q2c_mapped_properties(event.connector_id, "deal")
        return hubspot.read_closed_won(event.connector_id._hub_request, deal_id, context, won_stages, extra)
