"""What a vendor's answer says about its limits: plain Python, no ORM.

- Any vendor: ``Retry-After`` (RFC 9110, 10.2.3), delay-seconds or an HTTP-date.
- HubSpot: every answer carries ``X-HubSpot-RateLimit-Max`` / ``-Remaining`` for the app's
  rolling window of ``-Interval-Milliseconds`` (e.g. 100 or 190 requests per 10 s), private
  apps also ``-Daily`` / ``-Daily-Remaining`` (reset at midnight in the account's time zone,
  which the answer does not tell) and some apps ``-Secondly`` / ``-Secondly-Remaining``. A
  429 names the limit hit in its body's ``policyName`` (TEN_SECONDLY_ROLLING, SECONDLY,
  DAILY); HubSpot promises no Retry-After. The window is rolling: it takes a call again once
  its oldest call turns one interval old, which the headers do not tell, but the calls of a
  process that made all of them do (``rolling_window_wait``).
- Salesforce: every REST answer carries ``Sforce-Limit-Info: api-usage=N/M``, the calls of
  the organization's rolling 24 hours; once spent, calls get 403 with errorCode
  REQUEST_LIMIT_EXCEEDED ("TotalRequests Limit exceeded."), or the same code for too many
  long-running requests at once ("ConcurrentPerOrgLongTxn Limit exceeded.").
"""

import email.utils
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

OK, RATE_LIMITED, UNAVAILABLE, REFUSED = "ok", "rate_limited", "remote_unavailable", "refused"
HUBSPOT = "X-HubSpot-RateLimit-"
_SFORCE_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True, slots=True)
class Quota:
    """The calls a vendor says are left: in its short window and for the day (None: not said)."""

    remaining: int | None = None
    limit: int | None = None
    window_seconds: float | None = None
    daily_remaining: int | None = None
    daily_limit: int | None = None

    @property
    def window_spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    @property
    def day_spent(self) -> bool:
        return self.daily_remaining is not None and self.daily_remaining <= 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an answer means for the call and the connector.

    ``kind``: ok, rate_limited (the vendor refuses for now: flow control, not an outage),
    remote_unavailable (5xx) or refused (any other 4xx). ``wait``: the seconds the vendor
    asks to wait, when it says; ``daily``: the day's allowance is spent (with no ``wait``,
    the caller waits its longest); ``policy``: the limit hit, as the vendor names it.
    ``window``: the wait is HubSpot's rolling window's whole interval, the most it can take
    (or, with no ``wait``, the rolling window refused the call without saying its interval):
    the caller may shorten it to when the window's oldest call ages out, if its own calls
    tell (``rolling_window_wait``). Never so for a wait the vendor gave (Retry-After), the
    per-second limit's second or the day's.
    """

    kind: str
    wait: float | None = None
    daily: bool = False
    policy: str | None = None
    window: bool = False


def _int(value) -> int | None:
    value = (value or "").strip() if isinstance(value, str) else value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """The seconds a Retry-After header asks for (RFC 9110, 10.2.3): delay-seconds or an
    HTTP-date; 0 for a date already passed; None without a readable header."""
    retry_after = (headers.get("Retry-After") or "").strip()
    if retry_after.isdigit():
        return float(retry_after)
    if retry_after:
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError, IndexError):
            return None
        if when is not None:
            if when.tzinfo is None:  # RFC 9110 dates are GMT
                when = when.replace(tzinfo=UTC)
            return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """When the vendor says to come back: Retry-After, else HubSpot's rate-limit window.

    A Retry-After date already passed asks for no wait (None).
    """
    explicit = retry_after_header(headers)
    if explicit is not None:
        return explicit or None
    return window_wait(headers)


def window_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds until HubSpot's spent short window lets a call through again, if one is spent.

    A rolling window frees a call when its oldest call leaves it, which the headers do not
    tell: at most one interval (see rolling_window_wait for less).
    """
    if headers.get(HUBSPOT + "Remaining") == "0":
        return _interval(headers)
    if headers.get(HUBSPOT + "Secondly-Remaining") == "0":
        return 1.0
    return None


def _interval(headers: Mapping[str, str]) -> float | None:
    interval = _int(headers.get(HUBSPOT + "Interval-Milliseconds"))
    return interval / 1000 if interval else None


def _whole_window(headers: Mapping[str, str]) -> bool:
    """Whether window_wait is the rolling window's whole interval (and the per-second limit,
    whose second a shorter wait could miss, is not spent as well)."""
    return (headers.get(HUBSPOT + "Remaining") == "0" and _interval(headers) is not None
            and headers.get(HUBSPOT + "Secondly-Remaining") != "0")


def rolling_window_wait(calls, limit: int, interval: float, now: float) -> float:
    """Seconds until a spent rolling window of ``limit`` calls per ``interval`` seconds takes a
    call again.

    ``calls``: the times (in ``now``'s clock, oldest first) of this process's recent calls
    that the vendor counted (the one that spent the window included; not a refused one). The
    window takes a call once its oldest call turns ``interval`` old. Which call that is, only
    the calls of this process tell: when its calls of the last interval are fewer than
    ``limit`` (other processes or apps spent the rest, at times it cannot know), the whole
    interval is waited, as the headers alone say.
    """
    recent = [stamp for stamp in calls if stamp > now - interval]
    if len(recent) >= limit:
        return max(recent[-limit] + interval - now, 0.05)
    return interval


def read_quota(headers: Mapping[str, str]) -> Quota | None:
    """The quota an answer reports (HubSpot's rate-limit headers, Salesforce's Sforce-Limit-Info)."""
    interval = _int(headers.get(HUBSPOT + "Interval-Milliseconds"))
    hubspot = Quota(
        remaining=_int(headers.get(HUBSPOT + "Remaining")),
        limit=_int(headers.get(HUBSPOT + "Max")),
        window_seconds=interval / 1000 if interval is not None else None,
        daily_remaining=_int(headers.get(HUBSPOT + "Daily-Remaining")),
        daily_limit=_int(headers.get(HUBSPOT + "Daily")),
    )
    if hubspot != Quota():
        return hubspot
    match = _SFORCE_USAGE.search(headers.get("Sforce-Limit-Info") or "")
    if match:
        used, limit = int(match.group(1)), int(match.group(2))
        return Quota(daily_remaining=max(limit - used, 0), daily_limit=limit)
    return None


def _error_body(text: str):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _salesforce_limit_error(body) -> str | None:
    """The message of Salesforce's REQUEST_LIMIT_EXCEEDED error in a 403 body, if it is one."""
    errors = body if isinstance(body, list) else [body]
    for error in errors:
        if isinstance(error, dict) and error.get("errorCode") == "REQUEST_LIMIT_EXCEEDED":
            return str(error.get("message") or "REQUEST_LIMIT_EXCEEDED")
    return None


def classify(status: int, headers: Mapping[str, str], text: str = "") -> Verdict:
    """What a vendor's answer (status, headers, body text) means, with the wait it asks for."""
    if status < 400:
        quota = read_quota(headers)
        # a call that spent the last of a window or of the day: the next one would be refused
        daily = bool(quota and quota.day_spent)
        return Verdict(OK, wait=window_wait(headers), daily=daily, window=_whole_window(headers) and not daily)
    body = _error_body(text)
    if status == 429:
        policy = body.get("policyName") if isinstance(body, dict) else None
        daily = policy == "DAILY" or (policy is None and headers.get(HUBSPOT + "Daily-Remaining") == "0")
        wait = retry_after_header(headers) or None
        window = False
        if wait is None and not daily:
            if policy == "TEN_SECONDLY_ROLLING" and headers.get(HUBSPOT + "Secondly-Remaining") != "0":
                # the rolling window's interval, as its headers say (whatever its Remaining
                # shows), else not said: the caller knows it from earlier answers, or waits its backoff
                wait, window = _interval(headers), True
            else:
                # the window's own length (its Remaining is 0), or a second for the secondly limit
                wait = window_wait(headers) or (1.0 if policy == "SECONDLY" else None)
                window = policy is None and _whole_window(headers)
        return Verdict(RATE_LIMITED, wait=wait, daily=daily, policy=policy, window=window)
    if status == 403:
        message = _salesforce_limit_error(body) if body is not None else None
        if message is None and "REQUEST_LIMIT_EXCEEDED" in text:
            message = "REQUEST_LIMIT_EXCEEDED"
        if message is not None:
            quota = read_quota(headers)
            # the organization's 24 hours are spent (TotalRequests); else too many long calls at once
            daily = "TotalRequests" in message or bool(quota and quota.day_spent)
            return Verdict(RATE_LIMITED, wait=retry_after_header(headers) or None, daily=daily, policy=message)
    if status >= 500:
        return Verdict(UNAVAILABLE, wait=retry_after_header(headers) or None)
    return Verdict(REFUSED)
