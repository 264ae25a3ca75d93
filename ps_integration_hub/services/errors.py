"""Failure classes a handler raises so the worker knows what to do next."""


class HubError(Exception):
    """Base class of the failures the worker classifies."""

    error_class = "permanent"

    def __init__(self, message: str, *, reason: str | None = None, context: dict | None = None):
        super().__init__(message)
        self.reason = reason or self.__class__.__name__
        # what the handler knew of the business (customer, reference, amount, currency)
        self.context = dict(context or {})


class TransientError(HubError):
    """A failure that may pass by itself (timeout, 429, 5xx): retried with backoff."""

    error_class = "transient"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: float | None = None,
                 context: dict | None = None):
        super().__init__(message, reason=reason or "transient", context=context)
        self.retry_after = retry_after


class OutOfTime(TransientError):
    """The worker's run has no time left for this event's vendor call.

    The event goes back to the queue without being charged an attempt, for the next run.
    """

    def __init__(self, message: str = "the worker run's time is up"):
        super().__init__(message, reason="out_of_time")


class RateLimited(TransientError):
    """The vendor refused the call for its rate limit or quota (HubSpot 429, Salesforce 403
    REQUEST_LIMIT_EXCEEDED): flow control, not the event's fault.

    The event is retried after ``retry_after`` (the vendor's hint, else the connector's
    backoff) without being charged an attempt, so a busy vendor never dead-letters events.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, policy: str | None = None,
                 context: dict | None = None):
        super().__init__(message, reason="rate_limited", retry_after=retry_after, context=context)
        self.policy = policy


class ConnectorPaused(TransientError):
    """The connector makes no call for now: its circuit breaker is open, or the vendor asked
    to wait (a rate limit, a spent quota). Nothing was sent.

    The event goes back to the queue uncharged, due again in ``retry_after`` seconds.
    """

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None):
        super().__init__(message, reason=reason, retry_after=retry_after)


class PermanentError(HubError):
    """A failure no retry will fix without a change (bad payload, 4xx): an exception."""

    error_class = "permanent"


class BusinessError(HubError):
    """A business rule is not met (unknown SKU, customer in conflict): a person must act."""

    error_class = "business"


class IgnoreEvent(Exception):
    """The event needs no work (a stage change that is not closed-won): ignored."""

    def __init__(self, reason: str, *, context: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.context = dict(context or {})
