import threading
import time
import weakref

from odoo import api, models

# The cron runner pass this thread is in: one pass works every ready job of a database
# with one cursor, and Odoo's time limits count from its start (prefork: from the
# watchdog ping before it), not from the start of each job.
_PASS = threading.local()


def runner_pass_started() -> float | None:
    """time.monotonic() at the start of the runner pass running this job, None outside one."""
    return _PASS.started if getattr(_PASS, "in_job", False) else None


def note_more_work() -> None:
    """The running job stops with work left: wake the runners once Odoo has rescheduled it."""
    _PASS.more = True


class IrCron(models.Model):
    _inherit = "ir.cron"

    @classmethod
    def _process_job(cls, cron_cr, job) -> None:
        ref = getattr(_PASS, "cursor", None)
        if ref is None or ref() is not cron_cr:
            _PASS.cursor = weakref.ref(cron_cr)
            _PASS.started = time.monotonic()
        _PASS.in_job, _PASS.more = True, False
        try:
            super()._process_job(cron_cr, job)
        finally:
            _PASS.in_job = False
        if _PASS.more:
            # Odoo queues a partially done job "as soon as possible" in this cursor but wakes
            # no runner (unless ODOO_NOTIFY_CRON_CHANGES is set): they would sleep up to a
            # minute with work waiting. Wake them once that trigger is committed.
            cron_cr.postcommit.add(api.Environment(cron_cr, job["user_id"], {})["ir.cron"]._notifydb)
