from odoo import fields, models


class PsHubBenchFloor(models.Model):
    """A request body as received: the row the floor route stores."""

    _name = "ps.hub.bench.floor"
    _description = "Bench: stored request body"
    _log_access = False

    body = fields.Text()
