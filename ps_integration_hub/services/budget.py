"""How long one worker run may go on: well inside the time limits Odoo enforces on it.

Odoo kills a prefork cron worker whose watchdog was not pinged for ``limit_time_real``
(or ``limit_time_real_cron``) seconds, raises in it once it used ``limit_time_cpu``
seconds of CPU, and restarts a threaded server whose cron thread ran past
``limit_time_real``. A killed run loses its whole batch (every event claimed by it is
charged an attempt and waits for the lease), so a run stops well before any of these.
"""

import math
import time
from dataclasses import dataclass

# A prefork cron worker pings its watchdog and then sleeps until it is notified or up to
# SLEEP_INTERVAL (60 s) + pid % 10 s, so a run that follows a full sleep has ~70 s less
# than limit_time_real before the kill.
PREFORK_IDLE_SLEEP = 70.0
# With every limit switched off a run still ends, so other crons get their turn.
NO_LIMIT_SECONDS = 60.0
# A run always gets this much, so a tight configuration cannot make runs that do nothing.
MIN_SECONDS = 5.0
# Events a run claims before it knows how long one takes in this process.
PROBE_BATCH = 10
# Shares of the usable time: stop claiming batches; stop starting events; every vendor
# call has ended (none starts later, and the timeout of one in flight is cut to it).
CLAIM_SHARE = 0.4
START_SHARE = 0.6
CALL_SHARE = 0.8


def usable_seconds(*, limit_time_real: int, limit_time_real_cron: int, limit_time_cpu: int,
                   prefork: bool) -> float:
    """Seconds a cron run may last from the start of its runner's pass, before the shares.

    Mirrors how odoo.service.server applies the options: in prefork mode the cron
    watchdog is limit_time_real_cron (-1: limit_time_real, 0: none) and counts the
    runner's idle sleep; threaded, a cron thread is held to limit_time_real_cron when
    positive, else limit_time_real, from the start of its pass. limit_time_cpu bounds
    CPU, which a run uses at most as fast as wall time: the smaller limit wins.
    """
    if prefork:
        real = limit_time_real if limit_time_real_cron == -1 else limit_time_real_cron
        if real and real > 0:
            real = max(real - PREFORK_IDLE_SLEEP, real / 4)
    else:
        real = limit_time_real_cron if limit_time_real_cron and limit_time_real_cron > 0 else limit_time_real
    limits = [float(limit) for limit in (real, limit_time_cpu) if limit and limit > 0]
    return max(min(limits) if limits else NO_LIMIT_SECONDS, MIN_SECONDS)


@dataclass(frozen=True)
class RunBudget:
    """The deadlines of one run, on the time.monotonic() clock."""

    started: float
    seconds: float

    @property
    def claim_until(self) -> float:
        return self.started + self.seconds * CLAIM_SHARE

    @property
    def start_until(self) -> float:
        return self.started + self.seconds * START_SHARE

    @property
    def call_until(self) -> float:
        return self.started + self.seconds * CALL_SHARE

    def can_claim(self) -> bool:
        return time.monotonic() < self.claim_until

    def claim_size(self, batch_size: int, seconds_per_event: float | None) -> int:
        """How many events to claim now: what can be started before start_until.

        Events claimed but not started are locked away from the other workers until
        this run gives them back: with slow events a full batch would idle them.
        """
        if math.isinf(self.seconds):
            return batch_size
        if not seconds_per_event:
            return min(batch_size, PROBE_BATCH)
        left = self.start_until - time.monotonic()
        return max(1, min(batch_size, int(left / seconds_per_event) + 1))


def unbounded() -> RunBudget:
    """The budget of a run outside a cron runner (a script, a test): no deadline."""
    return RunBudget(started=time.monotonic(), seconds=float("inf"))
