"""The canonical engagement every CRM adapter produces, and its validation."""

import fnmatch
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlparse

from odoo.addons.ps_integration_hub.services.errors import BusinessError, PermanentError
from odoo.addons.ps_integration_hub.services.mapping import lookup_key

# Mail providers whose domain says nothing about who the customer is: a customer is never
# matched by one of these (an administrator adds more in the system parameter
# ps_quote_to_cash.free_mail_domains). "*" stands for any country suffix.
FREE_MAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "outlook.*", "hotmail.*", "live.*", "msn.com", "windowslive.com",
    "yahoo.*", "ymail.com", "rocketmail.com", "aol.com", "icloud.com", "me.com", "mac.com",
    "gmx.*", "web.de", "t-online.de", "freenet.de", "proton.me", "protonmail.com", "protonmail.ch",
    "pm.me", "tutanota.com", "tuta.io", "fastmail.com", "hey.com", "mail.com", "zoho.com",
    "yandex.*", "mail.ru", "qq.com", "163.com", "126.com", "naver.com", "orange.fr", "free.fr",
    "laposte.net", "libero.it", "seznam.cz", "wp.pl", "o2.pl",
)


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
    # the CRM record as its API answered it (HubSpot company, Salesforce Account): what the
    # active customer mapping reads when the customer is created
    source: dict | None = field(default=None, repr=False, compare=False)


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
    """A deal's line as the CRM prices it.

    ``price_unit`` is the unit price before discount (None when the CRM has none: never
    read as 0); ``discount`` a percentage and ``unit_discount`` an amount off each unit;
    ``total`` the line's net total as the CRM computed it, when it says.
    """

    external_id: str
    sku: str | None
    name: str
    quantity: float
    price_unit: float | None
    billing_model: str | None = None
    milestones: str | None = None
    discount: float | None = None
    unit_discount: float | None = None
    total: float | None = None


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
    # the deal as the CRM answered it (HubSpot's deal, Salesforce's Opportunity): what the
    # active field mapping of deals reads (None: the code's own reading of the fields above)
    source: dict | None = field(default=None, repr=False)


def read_deal(request: Callable[..., Any], path: str, what: str, crm: str, **kwargs) -> dict:
    """The CRM's deal at ``path``; a deal the CRM no longer has is a business error (a person
    restores it or ignores the event), not a permanent failure of the hub."""
    try:
        return request("GET", path, **kwargs).json()
    except PermanentError as exc:
        if exc.reason != "remote_not_found":
            raise
        raise BusinessError(f"{what} no longer exists in {crm} (deleted or merged): restore it and retry, "
                            "or ignore this event.", reason="deal_not_found") from None


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
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):  # NaN and infinities are valid JSON to Python, not amounts
        raise ValueError(f"{what} is not a number: {value!r}")
    return number


def optional_float(value, what: str) -> float | None:
    """A number, or None when the CRM left it blank (a blank price is not a price of 0)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_float(value, what)


def is_won_stage(stage: str | None, won_stages: Iterable[str]) -> bool:
    """``stage`` is one of ``won_stages`` (the vendor values the Deal stage value map gives
    ``won``), compared as value maps compare: without surrounding space, in any case."""
    if stage is None or not str(stage).strip():
        return False
    return lookup_key(stage) in {lookup_key(won) for won in won_stages}


def is_free_mail(domain: str | None, extra: Iterable[str] = ()) -> bool:
    """The domain belongs to a mail provider (gmail.com, gmx.de...), not to a customer."""
    if not domain:
        return False
    domain = domain.lower()
    return any(fnmatch.fnmatchcase(domain, pattern.strip().lower())
               for pattern in (*FREE_MAIL_DOMAINS, *extra) if pattern.strip())


def _dec(value) -> Decimal:
    return Decimal(str(value or 0))


def _round(value: Decimal, digits: int) -> Decimal:
    """Odoo's float_round: half away from zero."""
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def line_net_total(line: Line, digits: int) -> Decimal:
    """The line's total after discounts, rounded to the currency's ``digits``.

    The CRM's own total when it gives one; otherwise quantity x price, less the amount off
    each unit, less the percentage (applied to the line's total, as HubSpot does).
    """
    if line.total is not None:
        return _round(_dec(line.total), digits)
    quantity = _dec(line.quantity)
    gross = quantity * (_dec(line.price_unit) - _dec(line.unit_discount))
    if line.discount:
        gross -= _round(gross * _dec(line.discount) / 100, digits)
    return _round(gross, digits)


def order_line_prices(line: Line, *, currency_digits: int, price_digits: int,
                      discount_digits: int) -> tuple[float, float] | None:
    """(price_unit, discount %) of an Odoo order line whose total is the CRM's net total.

    The CRM's unit price with a discount percentage comes first: the order, the quotation
    and the invoice then show the price and the discount the customer was quoted. When the
    discount cannot be written at Odoo's precision (an amount off each unit, 15.50 of 165,
    is 9.3939...%), the net unit price without discount. None if neither gives the total.
    """
    net = line_net_total(line, currency_digits)
    quantity, price = _dec(line.quantity), _dec(line.price_unit)
    gross = quantity * price

    def total(unit: Decimal, discount: Decimal) -> Decimal:
        return _round(quantity * unit * (1 - discount / 100), currency_digits)

    candidates = []
    if _round(gross, currency_digits) == net:
        candidates.append((price, Decimal(0)))
    if gross:
        if line.discount:
            candidates.append((price, _round(_dec(line.discount), discount_digits)))
        candidates.append((price, _round((1 - net / gross) * 100, discount_digits)))
    if quantity:
        candidates.append((_round(net / quantity, price_digits), Decimal(0)))
    for unit, discount in candidates:
        if _round(unit, price_digits) == unit and total(unit, discount) == net and 0 <= discount <= 100:
            return float(unit), float(discount)
    return None
