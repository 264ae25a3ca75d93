"""Plumbing shared by the fake vendors: a threaded HTTP server that records requests,
can be told to fail the next ones, and routes the rest to the vendor's handlers."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, unquote, urlsplit

JSON_TYPE = "application/json;charset=utf-8"

# --------------------------------------------------------------------------- plumbing


class Headers(dict[str, str]):
    """A dict of HTTP headers with case-insensitive keys (stored lower-cased)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((key.lower(), value) for key, value in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    """One request received by a fake.

    ``query`` maps each parameter to its value (repeated parameters joined by
    commas); ``body`` is the parsed JSON body, or the raw text when it is not
    JSON; ``text`` is always the raw text.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: Any
    text: str


@dataclass
class Answer:
    """A response: dict/list bodies are sent as JSON, str/bytes as is, None as no body."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


Route = tuple[str, re.Pattern[str], str]


def _routes(*specs: tuple[str, str, str]) -> tuple[Route, ...]:
    """Compile (method, path regex, handler method name) triples."""
    return tuple((method, re.compile(pattern), name) for method, pattern, name in specs)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the vendor that owns the server."""

    server: _Server
    timeout = 30

    def log_message(self, *args: Any) -> None:
        """Stay quiet."""

    def _serve(self) -> None:
        answer = self.server.vendor._handle(self)
        if answer.body is None:
            payload = b""
        elif isinstance(answer.body, bytes):
            payload = answer.body
        elif isinstance(answer.body, str):
            payload = answer.body.encode("utf-8")
        else:
            payload = json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], vendor: FakeVendor) -> None:
        self.vendor = vendor
        super().__init__(address, _Handler)


def retry_after_value(when: float | datetime) -> str:
    """A Retry-After header value (RFC 9110, 10.2.3): delay-seconds for a number of
    seconds, an HTTP-date (IMF-fixdate, GMT) for a datetime (naive means UTC)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return format_datetime(when.astimezone(UTC), usegmt=True)
    return str(max(0, round(when)))


def _hs_now() -> str:
    """Now in HubSpot's timestamp format (2026-11-20T10:00:00.000Z)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- base


class FakeVendor:
    """A fake vendor API served by a ThreadingHTTPServer on 127.0.0.1.

    Subclasses declare ``routes`` and implement ``_load_defaults``; they may
    override ``_authenticate``, ``_decorate``, ``_on_request`` and
    ``_failure_defaults``.
    """

    routes: ClassVar[tuple[Route, ...]] = ()
    default_failure_status: ClassVar[int] = 503

    def __init__(self, *, port: int = 0, latency: float = 0.0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._failures: deque[Answer] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # lifecycle

    def start(self) -> Self:
        """Bind (the same port again after a stop) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the fake must have been started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    # test controls

    def reset(self) -> None:
        """Forget recorded requests and pending failures, restore the default data."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._load_defaults()

    def fail_next(
        self,
        n: int = 1,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        retry_after: float | datetime | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (vendor default) and its usual body.

        ``retry_after`` adds a Retry-After header: seconds (a number) or an HTTP-date (a
        datetime), the two forms RFC 9110 allows.
        """
        status = status or self.default_failure_status
        default_body, default_headers = self._failure_defaults(status)
        answer_headers = {**default_headers, **(headers or {})}
        if retry_after is not None:
            answer_headers["Retry-After"] = retry_after_value(retry_after)
        with self._lock:
            for _ in range(n):
                self._failures.append(
                    Answer(status, default_body if body is None else body, dict(answer_headers))
                )

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and path prefix."""
        with self._lock:
            return [
                req
                for req in self.requests
                if (method is None or req.method == method.upper())
                and req.path.startswith(path_prefix)
            ]

    # hooks

    def _load_defaults(self) -> None:
        """(Re)build the vendor's data dicts and counters."""

    def _authenticate(self, req: RecordedRequest) -> Answer | None:
        """Return an error answer when the request is not authorised."""
        return None

    def _decorate(self, answer: Answer) -> None:
        """Add vendor headers to every answer."""

    def _on_request(self) -> None:
        """Count a request (called under the lock)."""

    def _limit(self, req: RecordedRequest) -> Answer | None:
        """Return an error answer when the vendor's rate limit refuses the request (called
        under the lock, when the answer is made)."""
        return None

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        """Default body and headers of a forced failure."""
        return {"status": "error", "message": HTTPStatus(status).phrase}, {}

    # dispatch

    def _handle(self, handler: BaseHTTPRequestHandler) -> Answer:
        length = int(handler.headers.get("Content-Length") or 0)
        text = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body: Any = json.loads(text) if text else ""
        except ValueError:
            body = text
        split = urlsplit(handler.path)
        query: dict[str, str] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        req = RecordedRequest(
            method=handler.command,
            path=unquote(split.path),
            query=query,
            headers=Headers(handler.headers.items()),
            body=body,
            text=text,
        )
        with self._lock:
            self.requests.append(req)
            self._on_request()
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            answer = self._failures.popleft() if self._failures else None
            if answer is None:
                answer = self._limit(req) or self._authenticate(req) or self._route(req)
            self._decorate(answer)
        return answer

    def _route(self, req: RecordedRequest) -> Answer:
        for method, pattern, name in self.routes:
            match = pattern.fullmatch(req.path)
            if match and method == req.method:
                handler: Callable[..., Answer] = getattr(self, name)
                return handler(req, *match.groups())
        return Answer(404, {"message": f"{type(self).__name__} serves no {req.method} {req.path}"})


