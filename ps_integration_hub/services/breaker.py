"""A connector's circuit breaker and rate-limit pause: plain Python, no ORM.

The breaker's stored state is on the connector (closed, open, half_open; consecutive
failures, cooldown, next probe). A worker process learns about the vendor call by call:
what it learned since it last wrote is a ``Health`` kept in the process's memory, and
``merge`` folds it into the stored state. Between two writes the process already acts on
what it learned (no call while it has seen the breaker trip or the vendor ask for a
pause), so a batch stops calling a failing vendor at once, while the stored state, which
all workers read, is written once per batch and not once per call.

What counts toward opening: the failures that say the vendor is down or unreachable (5xx,
timeouts, network errors). Not rate limits (flow control: the vendor works and asks us to
slow down, which the pause handles) and not refusals of one request (4xx, business errors).
"""

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .ratelimit import Quota, rolling_window_wait

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# the reasons of a TransientError that count as the vendor failing
BREAKER_REASONS = frozenset({"remote_unavailable", "network"})
# the times of a process's calls of a connector kept to place its rolling window (HubSpot's
# largest is 190 calls per 10 s): a larger window is waited whole
CALLS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """``threshold`` consecutive failures open the breaker for ``cooldown`` seconds, doubled
    at each failed probe up to ``cooldown_cap``."""

    threshold: int
    cooldown: float
    cooldown_cap: float

    def next_cooldown(self, previous: float | None) -> float:
        if not previous:
            return min(self.cooldown, self.cooldown_cap)
        return min(previous * 2, self.cooldown_cap)


@dataclass(frozen=True, slots=True)
class Stored:
    """The breaker as the connector row has it."""

    state: str = CLOSED
    failures: int = 0
    cooldown: float = 0.0
    probe_at: datetime | None = None


@dataclass(slots=True)
class Health:
    """What one process's calls told about one connector since it last wrote the connector.

    Times are wall-clock seconds (time.time()), so that they can be written for the other
    processes.

    Also what places the vendor's rolling window, kept across writes: the times of the
    process's last calls the vendor counted, and the window's limit and interval as an answer
    last reported them (a refusal may not repeat them).
    """

    failures: int = 0  # consecutive failures since the last success or write
    succeeded: bool = False  # a call succeeded since the last write: the stored count restarts
    stored_seen: int = 0  # the largest stored count of failures the process's calls saw
    last_error: str | None = None
    tripped: bool = False  # this process counted enough failures to open the breaker (not written yet)
    # and makes no call before this: its own transaction may not see the breaker it opened yet
    tripped_until: float = 0.0
    pause_until: float = 0.0  # no call before this (rate limit, spent quota)
    pause_reason: str | None = None
    pause_written: bool = True
    quota: Quota | None = None
    quota_at: float | None = None
    quota_written_at: float = 0.0
    calls: deque = field(default_factory=lambda: deque(maxlen=CALLS_KEPT))
    window_limit: int | None = None
    window_seconds: float | None = None

    def note_success(self, stored_failures: int = 0) -> None:
        """A call went through: the consecutive failures (this process's and the stored ones) end."""
        self.failures = 0
        self.succeeded = True
        self.tripped, self.tripped_until = False, 0.0
        self.stored_seen = max(self.stored_seen, stored_failures)

    def note_failure(self, error: str, threshold: int, stored_failures: int = 0, now: float = 0.0,
                     hold: float = 0.0) -> bool:
        """Count a failure; True when it makes the breaker trip, counted with the failures the
        other processes stored (``stored_failures``) unless a call went through since. A trip
        stops this process's calls for ``hold`` seconds from ``now`` (the breaker's cooldown)."""
        self.stored_seen = max(self.stored_seen, stored_failures)
        self.failures += 1
        self.last_error = error
        base = 0 if self.succeeded else stored_failures
        if base + self.failures >= threshold:
            self.tripped = True
            self.tripped_until = max(self.tripped_until, now + hold)
        return self.tripped

    def note_pause(self, until: float, reason: str) -> None:
        """No call before ``until`` (the longest pause asked wins)."""
        if until > self.pause_until:
            self.pause_until, self.pause_reason, self.pause_written = until, reason, False

    def note_quota(self, quota: Quota, now: float) -> None:
        self.quota, self.quota_at = quota, now
        if quota.limit and quota.window_seconds:
            self.window_limit, self.window_seconds = quota.limit, quota.window_seconds

    def note_call(self, now: float) -> None:
        """A call the vendor counted in its window (answered, not refused for the limit)."""
        self.calls.append(now)

    def window_wait(self, now: float) -> float | None:
        """Seconds until the vendor's spent rolling window takes a call again, as this process's
        calls place it (ratelimit.rolling_window_wait); None while no answer reported the window."""
        if not self.window_limit or not self.window_seconds:
            return None
        return rolling_window_wait(self.calls, self.window_limit, self.window_seconds, now)

    def wait(self, now: float) -> tuple[float, str] | None:
        """(seconds, why) this process must wait before calling again, or None."""
        if self.tripped or self.tripped_until > now:
            return max(self.tripped_until - now, 0.0), "breaker"
        if self.pause_until > now:
            return self.pause_until - now, self.pause_reason or "rate_limited"
        return None

    def quota_due(self, now: float, every: float) -> bool:
        """The quota is worth writing: not written for ``every`` seconds, or a limit is spent."""
        if self.quota is None or self.quota_at is None or self.quota_at <= self.quota_written_at:
            return False
        return now - self.quota_written_at >= every or self.quota.window_spent or self.quota.day_spent

    def breaker_due(self) -> bool:
        """The stored count of failures must change: failures to add, or some stored to clear."""
        return bool(self.failures or (self.succeeded and self.stored_seen))

    def written(self, quota: bool) -> None:
        """The process's news are stored: start counting afresh."""
        self.failures, self.succeeded, self.tripped, self.last_error = 0, False, False, None
        self.stored_seen = 0
        self.pause_written = True
        if quota and self.quota_at is not None:
            self.quota_written_at = self.quota_at


@dataclass(frozen=True, slots=True)
class Change:
    """The stored breaker after a merge, and whether it just opened."""

    state: str
    failures: int
    cooldown: float
    probe_at: datetime | None
    opened: bool = False


def merge(stored: Stored, failures: int, succeeded: bool, policy: BreakerPolicy, now: datetime) -> Change:
    """The stored breaker once one process's calls are counted in.

    ``failures``: consecutive failures since ``succeeded`` (a success) or, without one, on
    top of the stored count. A closed breaker opens at the threshold; an open one stays open
    until a probe closes it, whatever calls made before it opened answered.
    """
    count = failures if succeeded else stored.failures + failures
    if stored.state == CLOSED and count >= policy.threshold:
        cooldown = policy.next_cooldown(None)
        return Change(OPEN, count, cooldown, now + timedelta(seconds=cooldown), opened=True)
    return Change(stored.state, count, stored.cooldown, stored.probe_at)


def probed(stored: Stored, ok: bool, policy: BreakerPolicy, now: datetime) -> Change:
    """The breaker after a probe: closed when it went through, else open for a longer cooldown."""
    if ok:
        return Change(CLOSED, 0, 0.0, None)
    cooldown = policy.next_cooldown(stored.cooldown)
    return Change(OPEN, stored.failures + 1, cooldown, now + timedelta(seconds=cooldown))
