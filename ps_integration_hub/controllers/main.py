import json
import logging

from odoo import http
from odoo.http import request

from ..services import crypto
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
        if not connector._hub_content_type_ok(httpreq.content_type):
            return _json(415, error=f"unsupported content type {httpreq.mimetype!r}")
        body = httpreq.get_data()  # cached: Odoo may replay the request on a serialization failure
        headers = httpreq.headers
        try:
            connector._hub_verify_signature(httpreq, token, body)
            delivery = connector._hub_parse_delivery(body, headers)
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
        status, content_type, answer = connector._hub_acknowledge(new_ids, duplicates, dropped)
        return request.make_response(answer, status=status, headers=[("Content-Type", content_type)])
