"""The vendor payloads the fakes serve and the tests send, kept in ``fixtures/``."""

import json
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


def load_fixture(relpath: str) -> str:
    """Return the text of a fixture file, e.g. ``load_fixture("hubspot/deal_19077001.json")``."""
    return (FIXTURES_DIR / relpath).read_text(encoding="utf-8")


def load_json(relpath: str) -> Any:
    """Return a JSON fixture, parsed."""
    return json.loads(load_fixture(relpath))
