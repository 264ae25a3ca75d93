from odoo import http
from odoo.http import request


class PsHubBenchFloor(http.Controller):
    @http.route(
        "/ps_hub_bench/floor", type="http", auth="none", methods=["POST"],
        csrf=False, save_session=False, readonly=False,
    )
    def floor(self, **kwargs):
        """Store the body and acknowledge: what any durable delivery route must at least do.

        The hub's route is declared the same way (ps_integration_hub/controllers/main.py); it
        verifies, parses and queues besides. One SQL statement, and Odoo commits after it.
        """
        request.env.cr.execute(
            "INSERT INTO ps_hub_bench_floor (body) VALUES (%s)",
            [request.httprequest.get_data().decode("utf-8", "replace")],
        )
        return request.make_response('{"accepted": 1}', headers=[("Content-Type", "application/json")])
