import logging
import os
import threading
import time
import weakref

import psycopg2

from odoo import api, models, sql_db
from odoo.tools import SQL

from odoo.addons.base.models.ir_cron import ODOO_NOTIFY_FUNCTION

_logger = logging.getLogger(__name__)

# The cron runner pass this thread is in: one pass works every ready job of a database
# with one cursor, and Odoo's time limits count from its start (prefork: from the
# watchdog ping before it), not from the start of each job.
_PASS = threading.local()


# One connection to the 'postgres' database per process, kept for the NOTIFY that wakes the
# cron runners. Odoo's _notifydb() opens and closes one at each call (a new PostgreSQL
# backend, several ms during which the request that called it waits); the inbound route
# wakes the runners up to twice a second per process.
_NOTIFY = {"conn": None}
_NOTIFY_LOCK = threading.Lock()
_INHERITED = []  # a forked child keeps its parent's connection unused: closing it would end the parent's


def _forget_notify_connection() -> None:
    if _NOTIFY["conn"] is not None:
        _INHERITED.append(_NOTIFY["conn"])
        _NOTIFY["conn"] = None


os.register_at_fork(after_in_child=_forget_notify_connection)


def runner_pass_started() -> float | None:
    """time.monotonic() at the start of the runner pass running this job, None outside one."""
    return _PASS.started if getattr(_PASS, "in_job", False) else None


def note_more_work() -> None:
    """The running job stops with work left: wake the runners once Odoo has rescheduled it."""
    _PASS.more = True


class IrCron(models.Model):
    _inherit = "ir.cron"

    @api.model
    def _hub_notify_runners(self) -> None:
        """Wake the cron runners, as _notifydb() does, on the connection this process keeps."""
        query = SQL("SELECT %s('cron_trigger', %s)", SQL.identifier(ODOO_NOTIFY_FUNCTION), self.env.cr.dbname)
        with _NOTIFY_LOCK:
            conn = _NOTIFY["conn"]
            try:
                if conn is None or conn.closed:
                    conn = psycopg2.connect(**sql_db.connection_info_for("postgres")[1])
                    conn.autocommit = True
                    _NOTIFY["conn"] = conn
                with conn.cursor() as cr:
                    cr.execute(query.code, query.params)
                return
            except psycopg2.Error as exc:
                # closed by the server (restart, idle timeout, terminated): Odoo's way this time
                _logger.info("ps_hub: the kept notify connection failed (%s): notifying on a new one",
                             exc.__class__.__name__)
                if conn is not None:
                    conn.close()
                _NOTIFY["conn"] = None
        self._notifydb()

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
