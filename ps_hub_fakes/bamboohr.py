"""Fake BambooHR employees API."""

from __future__ import annotations

import base64
import copy
from http import HTTPStatus
from typing import Any

from .base import Answer, FakeVendor, RecordedRequest, _routes
from .fixtures import load_json

# --------------------------------------------------------------------------- BambooHR


class FakeBambooHR(FakeVendor):
    """BambooHR employees API (``/api/v1/...`` and ``/api/gateway.php/{company}/v1/...``).

    ``api_key``: when set, HTTP basic auth with the key as username is required.
    """

    default_failure_status = 429

    routes = _routes(
        ("GET", r"/api/v1/employees/([^/]+)", "_get_employee"),
        ("GET", r"/api/gateway\.php/[^/]+/v1/employees/([^/]+)", "_get_employee"),
    )

    def __init__(
        self,
        api_key: str | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        super().__init__(port=port, latency=latency, host=host)

    def _load_defaults(self) -> None:
        self.employees: dict[str, dict[str, Any]] = {
            employee["id"]: employee
            for employee in (
                load_json("bamboohr/employee_1042.json"),
                load_json("bamboohr/employee_1207.json"),
            )
        }

    def _authenticate(self, req: RecordedRequest) -> Answer | None:
        if self.api_key is None:
            return None
        scheme, _, encoded = req.headers.get("Authorization", "").partition(" ")
        try:
            username = base64.b64decode(encoded).decode("utf-8").partition(":")[0]
        except ValueError:
            username = None
        if scheme.lower() == "basic" and username == self.api_key:
            return None
        return Answer(
            401,
            headers={
                "WWW-Authenticate": 'Basic realm="BambooHR API"',
                "X-BambooHR-Error-Message": "Invalid API key",
            },
        )

    def _failure_defaults(self, status: int) -> tuple[Any, dict[str, str]]:
        headers = {"X-BambooHR-Error-Message": HTTPStatus(status).phrase}
        if status == 429:
            headers["Retry-After"] = "2"
        return "", headers

    def _get_employee(self, req: RecordedRequest, employee_id: str) -> Answer:
        employee = self.employees.get(employee_id)
        if employee is None:
            return Answer(404, headers={"X-BambooHR-Error-Message": "Employee not found"})
        fields = [name.strip() for name in req.query.get("fields", "").split(",") if name.strip()]
        if not fields:
            return Answer(200, copy.deepcopy(employee))
        answer = {"id": employee["id"]}
        answer.update({name: copy.deepcopy(employee.get(name)) for name in fields})
        return Answer(200, answer)


