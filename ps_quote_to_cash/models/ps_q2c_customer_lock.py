from odoo import api, fields, models
from odoo.tools import SQL


class PsQ2cCustomerLock(models.Model):
    """One row per customer identity (external id, VAT, domain) a worker matched or created.

    Workers run in REPEATABLE READ: a worker that waited for another one creating the same
    new customer would still not see that customer, and would create it a second time.
    Upserting the identity's row serializes them, and PostgreSQL refuses the upsert of the
    worker whose snapshot is older than the other's commit: that worker retries, and then
    finds the customer.
    """

    _name = "ps.q2c.customer.lock"
    _description = "Customer Identity Lock"
    _log_access = False

    key = fields.Char(required=True, readonly=True)
    locked_at = fields.Datetime(readonly=True)

    _key_unique = models.UniqueIndex("(key)")

    @api.autovacuum
    def _gc_customer_locks(self):
        """Delete the rows of customers matched over a day ago.

        A row only serializes the transactions running while it is written; a worker that
        finds it gone writes it again, and the serialization holds the same.
        """
        self.env.cr.execute(SQL(
            "DELETE FROM ps_q2c_customer_lock WHERE locked_at < now() AT TIME ZONE 'UTC' - interval '1 day'"))
