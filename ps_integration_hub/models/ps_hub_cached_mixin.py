from odoo import api, models


class PsHubCachedMixin(models.AbstractModel):
    """Configuration the hub reads through ``ormcache`` (ownership rules, value maps and their
    entries): any change clears the registry's caches, in this process at once and in the
    others through Odoo's signalling at their next request or job."""

    _name = "ps.hub.cached.mixin"
    _description = "Integration Hub: Cached Configuration"

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self.env.registry.clear_cache()
        return records

    def write(self, vals):
        result = super().write(vals)
        self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result
