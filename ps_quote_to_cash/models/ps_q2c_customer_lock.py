from odoo import fields, models


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
