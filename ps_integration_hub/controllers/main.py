import json
import logging

from odoo import http
from odoo.http import request

from ..services import crypto, parsers
from ..services.signatures import SignatureError

_logger = logging.getLogger(__name__)


def _json(status: int, **body) -> http.Response:
    return request.make_response(
        json.dumps(body), status=status, headers=[("Content-Type", "application/json")],
    )


class PsHubInboundController(http.Controller):
    @http.route(
        "/ps_hub/in/<string:token>", type="http", auth="none", methods=["POST"],
        csrf=False, save_session=False, readonly=False,
    )
    def receive(self, token, **kwargs):
        """Check, store and acknowledge a vendor's delivery; the workers do the rest."""
        httpreq = request.httprequest
        connector = request.env["ps.hub.connector"]._hub_find_by_token(token)
        if not connector:
            return _json(404, error="unknown or inactive connector")
        length = httpreq.content_length
        if length is None or length > connector.max_body_bytes:
            if length is None:
                return _json(411, error="Content-Length required")
            return _json(413, error=f"body over {connector.max_body_bytes} bytes")
        if not parsers.content_type_ok(connector.system, httpreq.content_type):
            return _json(415, error=f"unsupported content type {httpreq.mimetype!r}")
        body = httpreq.get_data()  # cached: Odoo may replay the request on a serialization failure
        headers = httpreq.headers
        urls = [httpreq.url]
        if connector.system == "hubspot":
            # HubSpot signs the URL it was given: the public one, query string as received
            public = connector._hub_public_inbound_url(token)
            query = httpreq.query_string.decode("latin-1")
            urls.insert(0, f"{public}?{query}" if query else public)
        try:
            connector._hub_verify(httpreq.method, urls, body, headers)
            delivery = parsers.parse_delivery(connector.system, body, headers)
            dropped = connector._hub_check_delivery(delivery)
        except SignatureError as exc:
            connector._hub_count_signature_failure(str(exc), httpreq.remote_addr)
            return _json(401, error="signature verification failed")
        except (crypto.SecretKeyMissing, crypto.SecretUndecryptable) as exc:
            _logger.error("ps_hub: connector %s cannot verify deliveries: %s", connector.id, exc)
            return _json(503, error="connector misconfigured")
        new_ids, duplicates = request.env["ps.hub.event"].sudo()._hub_enqueue(
            connector, delivery, dict(headers),
        )
        if connector.system == "salesforce":
            return request.make_response(
                parsers.SALESFORCE_ACK, headers=[("Content-Type", "text/xml; charset=utf-8")],
            )
        extra = {"other_portal": dropped} if dropped else {}
        return _json(200, accepted=len(new_ids), duplicates=duplicates, **extra)
