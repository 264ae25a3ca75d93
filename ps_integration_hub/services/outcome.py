"""What became of an event a handler ran: plain Python, no ORM.

A handler answers ``{event id: result}``; a result is an ``Outcome``, a record, ``None``
or an exception (raised, or returned for that one event). ``outcome_of`` turns any of
these into an ``Outcome``, and ``settle`` turns an outcome into the event's next state
under its connector's retry policy, as queue_job's ``job.py`` keeps the state machine
apart from the stored row.

The business context a handler found (the customer, the deal's name and amount) travels
in the outcome, or in the ``context`` of the exception it raises, so the exception desk
shows it even when the handler failed and its work was rolled back.
"""

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg2.errors
import requests

from odoo.exceptions import AccessError, UserError, ValidationError

from .backoff import backoff_delay
from .errors import ConnectorPaused, HubError, IgnoreEvent, OutOfTime, RateLimited

DONE, IGNORED, FAILED, RELEASE = "done", "ignored", "failed", "release"
# seconds the other calls of a connector wait after a rate-limit refusal that named no wait
RATE_LIMIT_WAIT = 10.0
CONTEXT_KEYS = ("customer", "reference", "amount", "currency")
TRANSIENT_DB_ERRORS = (
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.LockNotAvailable,
)


@dataclass(slots=True)
class Outcome:
    """The result of one event's run, before the retry policy decides its state.

    ``kind`` is done, ignored, failed, or release (the run did not start it, or its
    connector made no call: it goes back to the queue uncharged, due again after
    ``retry_after`` seconds if given, else at once). A failure not ``charged`` (a rate
    limit) gives its attempt back: it never dead-letters the event.
    """

    kind: str
    error_class: str | None = None
    reason: str | None = None
    message: str | None = None
    res_model: str | None = None
    res_id: int | None = None
    retry_after: float | None = None
    context: dict = field(default_factory=dict)
    mapping_version_id: int | None = None  # the ps.hub.mapping version that read the event
    charged: bool = True

    @property
    def holds_its_object(self) -> bool:
        """The event stays queued (retry, or given back): later events of its object wait."""
        return self.kind == RELEASE or (self.kind == FAILED and self.error_class == "transient")

    def mapped_by(self, mapping_version_id: int | None) -> "Outcome":
        """This outcome, recording the mapping version that read the event."""
        self.mapping_version_id = mapping_version_id or None
        return self

    def noting(self, context: dict | None) -> "Outcome":
        """This outcome with ``context`` added under what it already notes."""
        if context:
            self.context = {**clean_context(context), **self.context}
        return self


def clean_context(context: dict | None) -> dict:
    """The known context keys with a value; amounts as floats."""
    noted = {}
    for key in CONTEXT_KEYS:
        value = (context or {}).get(key)
        if value is None or value == "":
            continue
        if key == "amount":
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
        else:
            value = str(value)
        noted[key] = value
    return noted


def done(record=None, context: dict | None = None) -> Outcome:
    """The event did its work; ``record`` is what it produced, if one."""
    res_model = res_id = None
    if record is not None and getattr(record, "ids", None):
        if len(record.ids) != 1:
            raise ValueError(f"a handler produced {len(record.ids)} {record._name} records for one event")
        res_model, res_id = record._name, record.ids[0]
    return Outcome(DONE, res_model=res_model, res_id=res_id, context=clean_context(context))


def ignored(why: str, reason: str = "not_applicable", context: dict | None = None) -> Outcome:
    return Outcome(IGNORED, reason=reason, message=why, context=clean_context(context))


def failed(error_class: str, reason: str, message: str, retry_after: float | None = None,
           context: dict | None = None, charged: bool = True) -> Outcome:
    return Outcome(FAILED, error_class=error_class, reason=reason, message=message,
                   retry_after=retry_after, context=clean_context(context), charged=charged)


def release(retry_after: float | None = None) -> Outcome:
    """Back to the queue uncharged: due at once, or in ``retry_after`` seconds."""
    return Outcome(RELEASE, retry_after=retry_after or None)


def of_exception(exc: BaseException, attempts: int) -> Outcome:
    """Classify what a handler raised (or returned) for one event at its ``attempts``-th run."""
    context = getattr(exc, "context", None)
    if isinstance(exc, IgnoreEvent):
        return ignored(exc.reason, context=context)
    if isinstance(exc, OutOfTime):
        return release()
    if isinstance(exc, ConnectorPaused):
        return release(exc.retry_after)
    if isinstance(exc, RateLimited):
        return failed(exc.error_class, exc.reason, str(exc), exc.retry_after, context, charged=False)
    if isinstance(exc, HubError):
        return failed(exc.error_class, exc.reason, str(exc), getattr(exc, "retry_after", None), context)
    if isinstance(exc, psycopg2.errors.UniqueViolation):
        return unique_violation(exc, attempts)
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return failed("transient", "database_conflict", str(exc).strip())
    if isinstance(exc, requests.RequestException):
        return failed("transient", "network", f"{exc.__class__.__name__}: {exc}")
    if isinstance(exc, (UserError, ValidationError, AccessError)):
        return failed("business", "rejected_by_odoo", str(exc))
    trace = "".join(traceback.format_exception(exc, limit=8))
    return failed("permanent", "handler_crash", f"{exc.__class__.__name__}: {exc}\n\n{trace}")


def unique_violation(exc: psycopg2.errors.UniqueViolation, attempts: int) -> Outcome:
    """At the first attempt most likely another worker creating the same record (two deals of
    one new customer), which this transaction's snapshot cannot see: retried. Met again, it
    is in the data (a stale binding, two external records for one Odoo record): a person
    must act."""
    constraint = exc.diag.constraint_name or "a unique constraint"
    error = str(exc).strip()
    if attempts <= 1:
        return failed("transient", "database_conflict", f"unique violation on {constraint}: {error}")
    return failed(
        "permanent", "unique_violation",
        f"unique violation on {constraint}, again after a retry: {error}\n\nWhat this event would create "
        "already exists (a stale binding, or two external records for one Odoo record): fix or remove "
        "the existing record or binding, then retry.",
    )


def outcome_of(result, attempts: int) -> Outcome:
    """An ``Outcome`` from whatever a handler answered for one event."""
    if isinstance(result, Outcome):
        return result
    if isinstance(result, BaseException):
        return of_exception(result, attempts)
    return done(result)


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base: float
    backoff_cap: float


def settle(outcome: Outcome, attempts: int, policy: RetryPolicy, now: datetime) -> dict:
    """The event's new column values for ``outcome`` at its ``attempts``-th run.

    A transient failure waits a backoff (at least what the vendor asked) and is dead-lettered
    once the attempts are spent; any other failure waits for a person. A failure not charged
    (a rate limit) gives back its attempt (``refund``) and waits what the vendor asked, else
    the backoff of the attempts the event has used.
    """
    values = {"state": outcome.kind, "error_class": None, "reason": None, "last_error": None,
              "ignore_reason": None, "next_attempt_at": None, "refund": 0,
              "res_model": outcome.res_model, "res_id": outcome.res_id,
              "mapping_version_id": outcome.mapping_version_id}
    if outcome.kind == IGNORED:
        values.update(reason=outcome.reason, ignore_reason=outcome.message)
    elif outcome.kind == FAILED:
        values.update(error_class=outcome.error_class, reason=outcome.reason, last_error=outcome.message)
        if outcome.error_class != "transient":
            values["state"] = "exception"
        elif not outcome.charged:
            delay = outcome.retry_after
            if delay is None:
                delay = backoff_delay(max(attempts - 1, 1), policy.backoff_base, policy.backoff_cap)
            values.update(state="retry", refund=1, next_attempt_at=now + timedelta(seconds=delay))
        elif attempts >= policy.max_attempts:
            values["state"] = "dead"
        else:
            delay = max(backoff_delay(attempts, policy.backoff_base, policy.backoff_cap),
                        outcome.retry_after or 0)
            values.update(state="retry", next_attempt_at=now + timedelta(seconds=delay))
    for key in CONTEXT_KEYS:
        values[f"ctx_{key}"] = outcome.context.get(key)
    return values
