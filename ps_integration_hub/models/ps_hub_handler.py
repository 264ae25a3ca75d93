import math
import time

from odoo import models

from ..services import outcome as oc


class PsHubHandler(models.AbstractModel):
    """What an event type's handler implements: ``process(events) -> {event id: result}``.

    The engine calls it with events of the handler's types (at most the type's batch size,
    in id order; consecutive events of one external object in their order) inside a
    savepoint. A result is a ``services.outcome.Outcome``, the record the event produced,
    ``None`` (done, nothing to point to) or an exception for that event alone. If
    ``process`` raises, the engine splits the batch down to single events, so a handler is
    written for the batch and needs no single-event twin.
    """

    _name = "ps.hub.handler"
    _description = "Integration Event Handler"
    _hub_handler = True  # what an event type checks its handler model by

    def process(self, events):
        """{event id: result} for ``events``; by default each event alone, in a savepoint.

        An event whose object has an earlier event in this batch that stays queued (a
        transient failure) is not run: it waits behind it. Events the worker's run has no
        time left to start are given back.
        """
        results, waiting = {}, set()
        for event in events:
            obj = (event.connector_id.id, event.ordering_key) if event.ordering_key else None
            if obj in waiting or self._hub_out_of_time():
                results[event.id] = oc.release()
                continue
            try:
                with self.env.cr.savepoint():
                    results[event.id] = self._process_one(event)
            except Exception as exc:  # noqa: BLE001 - the engine classifies it for this event
                results[event.id] = exc
            if obj and oc.outcome_of(results[event.id], event.attempts).holds_its_object:
                waiting.add(obj)
        return results

    def _hub_mapping_source(self, event, mapping, payload=None):
        """(document, partial) that ``mapping`` reads of ``event``, or None when the event
        carries nothing for it: the dry-run replays stored events through this. ``payload``
        is the event's, when the caller has read it already (as the dry-run has).

        By default the payload, whole. A handler whose events carry part of the object (a
        property change) or wrap it (an outbound message) says so by overriding this.
        """
        payload = event.payload if payload is None else payload
        return (payload, False) if isinstance(payload, dict) else None

    def _hub_out_of_time(self) -> bool:
        """The worker's run may start no more events (its deadline comes in the context)."""
        return time.monotonic() >= self.env.context.get("ps_hub_start_until", math.inf)

    def _process_one(self, event):
        """The result of one event (handlers that work event by event override this)."""
        raise NotImplementedError(f"{self._name} handles no event on its own")
