from collections import defaultdict

from odoo import models

from ..services import outcome as oc
from ..services import push as pushes
from ..services.errors import PermanentError, TransientError


class PsHubHandlerHubspotPush(models.AbstractModel):
    """Pushes outbound events to HubSpot CRM objects: one PATCH for one object, the batch
    update endpoint (up to 100 objects a call) for several."""

    _name = "ps.hub.handler.hubspot.push"
    _inherit = "ps.hub.handler"
    _description = "Integration Handler: push to HubSpot"

    def process(self, events):
        """{event id: result}: the events of one object are one input carrying their latest
        values. Once HubSpot's rolling window is spent (an answer shows no call remaining, or a
        call is refused with 429) no call is made until it takes one again: the events wait
        that long, uncharged, and the refused call's events retry then. The connector paces the
        window: _hub_request raises ConnectorPaused, before any call, while it is spent."""
        results, calls = {}, defaultdict(dict)  # (connector, object type) -> {object id: [events]}
        for event in events:
            payload = event.payload if isinstance(event.payload, dict) else {}
            object_type = pushes.HUBSPOT_OBJECTS.get(payload.get("external_model"))
            if not object_type or not pushes.path_safe(str(payload.get("external_id") or "")) \
                    or not isinstance(payload.get("properties"), dict):
                results[event.id] = PermanentError(
                    f"This push names no HubSpot object it can update (object type "
                    f"{payload.get('external_model')!r}, id {payload.get('external_id')!r}): it is not sent.",
                    reason="bad_payload")
                continue
            calls[event.connector_id, object_type].setdefault(str(payload["external_id"]), []).append(event)
        for (connector, object_type), objects in calls.items():
            ids = list(objects)
            for start in range(0, len(ids), pushes.HUBSPOT_BATCH_MAX):
                chunk = {object_id: objects[object_id] for object_id in ids[start:start + pushes.HUBSPOT_BATCH_MAX]}
                if self._hub_out_of_time():
                    results.update((e.id, oc.release()) for evts in chunk.values() for e in evts)
                    continue
                try:
                    outcomes = self._hub_push(connector, object_type, chunk)
                except TransientError as exc:  # the call as a whole: each of its events has its outcome
                    # (the window spent by an earlier call, or the breaker open: ConnectorPaused before
                    # any call, its events released uncharged for as long; a 429's retry_after is
                    # already the window's precise wait)
                    outcomes = {object_id: exc for object_id in chunk}
                for object_id, evts in chunk.items():
                    results.update((event.id, outcomes[object_id]) for event in evts)
        return results

    def _hub_push(self, connector, object_type: str, objects: dict) -> dict:
        """{object id: result} of one call that sets each object's latest values."""
        properties = {object_id: self._hub_properties(evts) for object_id, evts in objects.items()}
        if len(objects) == 1:
            ((object_id, values),) = properties.items()
            try:
                connector._hub_request("PATCH", f"/crm/v3/objects/{object_type}/{object_id}",
                                       json={"properties": values})
            except PermanentError as exc:
                return {object_id: exc}
            return {object_id: oc.done()}
        # a refusal of the whole batch (a bad value of one object) raises: the engine splits
        # the batch down until the object at fault is alone
        response = connector._hub_request(
            "POST", f"/crm/v3/objects/{object_type}/batch/update",
            json={"inputs": [{"id": object_id, "properties": values} for object_id, values in properties.items()]},
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        failures = pushes.hubspot_batch_failures(list(objects), body)
        return {
            object_id: PermanentError(
                f"HubSpot did not update {object_type} {object_id}: {failures[object_id]}",
                reason="remote_not_found" if "OBJECT_NOT_FOUND" in failures[object_id] else "remote_refused")
            if object_id in failures else oc.done()
            for object_id in objects
        }

    def _hub_properties(self, events) -> dict:
        """The values the object takes: those of its events in their order, the latest last."""
        values = {}
        for event in sorted(events, key=lambda e: e.id):
            values.update(event.payload["properties"])
        return values
