from collections import defaultdict

from odoo import models

from ..services import outcome as oc
from ..services import push as pushes
from ..services.errors import HubError, PermanentError, TransientError


class PsHubHandlerSalesforcePush(models.AbstractModel):
    """Pushes outbound events to Salesforce sObjects: one PATCH per object (the connector
    keeps the OAuth2 token and fetches a new one once on a 401)."""

    _name = "ps.hub.handler.salesforce.push"
    _inherit = "ps.hub.handler"
    _description = "Integration Handler: push to Salesforce"

    def process(self, events):
        """{event id: result}: the events of one object are one PATCH of their latest values;
        after a refusal for the organization's API limit no other call is made."""
        results, objects = {}, defaultdict(list)
        for event in events:
            payload = event.payload if isinstance(event.payload, dict) else {}
            sobject, object_id = payload.get("external_model"), payload.get("external_id")
            if not pushes.path_safe(str(sobject or "")) or not pushes.path_safe(str(object_id or "")) \
                    or not isinstance(payload.get("properties"), dict):
                results[event.id] = PermanentError(
                    f"This push names no Salesforce record it can update (sObject {sobject!r}, id "
                    f"{object_id!r}): it is not sent.", reason="bad_payload")
                continue
            objects[event.connector_id, str(sobject), str(object_id)].append(event)
        waiting = None
        for (connector, sobject, object_id), evts in objects.items():
            if waiting is not None or self._hub_out_of_time():
                results.update((event.id, oc.release(waiting)) for event in evts)
                continue
            values = {}
            for event in sorted(evts, key=lambda e: e.id):
                values.update(event.payload["properties"])
            try:
                connector._hub_request(
                    "PATCH", f"/services/data/{pushes.SALESFORCE_API_VERSION}/sobjects/{sobject}/{object_id}",
                    json=values)
                outcome = oc.done()
            except HubError as exc:
                outcome = exc
                if isinstance(exc, TransientError) and exc.reason == "rate_limited":
                    waiting = exc.retry_after or oc.RATE_LIMIT_WAIT
            results.update((event.id, outcome) for event in evts)
        return results
