from odoo import models

from .ps_q2c_engagement import EMAIL_HOST, WEBSITE_HOST


class ResPartner(models.Model):
    _inherit = "res.partner"

    # The customer matching of a closed-won deal looks companies up by the host of their
    # website or e-mail: without these indexes each batch of deals scans every partner with
    # regular expressions, and the deal rate falls as the partner table grows.
    _q2c_website_host_idx = models.Index(f"(({WEBSITE_HOST})) WHERE is_company")
    _q2c_email_host_idx = models.Index(f"(({EMAIL_HOST})) WHERE is_company")
