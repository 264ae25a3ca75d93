"""The canonical engagement every CRM adapter produces, and its validation."""

from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class Customer:
    external_model: str
    external_id: str
    name: str
    vat: str | None = None
    domain: str | None = None
    street: str | None = None
    city: str | None = None
    zip: str | None = None
    country: str | None = None
    phone: str | None = None


@dataclass
class Contact:
    external_model: str
    external_id: str
    name: str
    email: str | None = None
    phone: str | None = None
    function: str | None = None


@dataclass
class Line:
    external_id: str
    sku: str | None
    name: str
    quantity: float
    price_unit: float
    billing_model: str | None = None
    milestones: str | None = None


@dataclass
class Engagement:
    deal_model: str
    deal_id: str
    name: str
    amount: float | None
    currency: str | None
    customer: Customer
    contact: Contact | None = None
    lines: list[Line] = field(default_factory=list)
    po_number: str | None = None
    legal_entity: str | None = None
    payment_terms: str | None = None


def domain_of(value: str | None) -> str | None:
    """``northwind-legal.example`` from a domain, a URL or an e-mail address."""
    if not value:
        return None
    value = value.strip().lower()
    if "@" in value:
        value = value.rsplit("@", 1)[1]
    if "//" in value:
        value = urlparse(value).hostname or ""
    value = value.split("/", 1)[0]
    if value.startswith("www."):
        value = value[4:]
    return value or None


def normalize_vat(value: str | None) -> str | None:
    """Upper case, without spaces, dots and dashes, for comparison."""
    if not value:
        return None
    return "".join(ch for ch in value.upper() if ch.isalnum()) or None


def to_float(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {value!r}") from None
