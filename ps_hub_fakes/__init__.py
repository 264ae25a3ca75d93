"""Local HTTP servers that play the external systems' APIs, as the vendors document them.

Used by the tests, the demo and the benchmarks. Each fake keeps its data in plain
dicts (preloaded from the fixtures in ``fixtures/``) so tests can add or change
objects, records every request it receives, and can be told to fail the next
requests (rate limits, outages) or to answer slowly.
"""

from .bamboohr import FakeBambooHR
from .base import Answer, FakeVendor, Headers, RecordedRequest
from .fixtures import FIXTURES_DIR, load_fixture, load_json
from .hubspot import FakeHubSpot
from .salesforce import FakeSalesforce

__all__ = [
    "FIXTURES_DIR",
    "Answer",
    "FakeBambooHR",
    "FakeHubSpot",
    "FakeSalesforce",
    "FakeVendor",
    "Headers",
    "RecordedRequest",
    "load_fixture",
    "load_json",
]
