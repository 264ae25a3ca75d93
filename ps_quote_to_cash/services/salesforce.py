"""Salesforce Opportunity outbound message + REST reads -> canonical engagement."""

import re
from collections.abc import Callable, Collection
from typing import Any

from odoo.addons.ps_integration_hub.services.errors import BusinessError, IgnoreEvent, PermanentError

from .engagement import Customer, Engagement, Line, domain_of, is_won_stage, optional_float, read_deal, to_float

API = "/services/data/v62.0"
_SF_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
# The won stage a new org has. The won stage names are data (the entries of the Deal stage
# value map valued "won", an org's renamed won stage among them): this is the one known
# without the map, when a database no longer has it.
WON_STAGES = frozenset({"Closed Won"})


def is_closed_won(sobject: dict, won_stages: Collection[str]) -> bool:
    """The outbound message names a won opportunity: IsWon true, or a StageName among
    ``won_stages`` (for a message whose fields leave IsWon out). Only a claim: whether the
    Opportunity is won is IsWon as REST answers it (``read_won_opportunity``)."""
    return str(sobject.get("IsWon", "")).lower() == "true" or is_won_stage(sobject.get("StageName"), won_stages)


def is_won(opportunity: dict) -> bool:
    """The Opportunity read over REST is won (IsWon: stage names are each org's own)."""
    return opportunity.get("IsWon") is True or str(opportunity.get("IsWon")).lower() == "true"


def check_id(record_id: str) -> str:
    """The id, checked: it goes into URLs and SOQL."""
    if not _SF_ID.match(record_id or ""):
        raise ValueError(f"not a Salesforce id: {record_id!r}")
    return record_id


def line_items_query(opportunity_id: str) -> str:
    """SOQL for the opportunity's products (the id is checked: it goes into the query)."""
    check_id(opportunity_id)
    # TotalPrice is Quantity x UnitPrice less Discount (a percentage), rounded by Salesforce
    return (
        "SELECT Id, ProductCode, Name, Quantity, UnitPrice, Discount, TotalPrice, Billing_Model__c, "
        f"Milestones__c FROM OpportunityLineItem WHERE OpportunityId = '{opportunity_id}'"
    )


def engagement(sobject: dict, account: dict, line_items: list[dict]) -> Engagement:
    """Canonical engagement of a won Opportunity (``sobject`` as read over REST)."""
    customer = Customer(
        external_model="Account", external_id=str(account["Id"]),
        name=account.get("Name") or f"Salesforce account {account['Id']}",
        vat=account.get("Tax_Id__c"), domain=domain_of(account.get("Website")),
        street=account.get("BillingStreet"), city=account.get("BillingCity"),
        zip=account.get("BillingPostalCode"), country=account.get("BillingCountry"),
        phone=account.get("Phone"), source=account,
    )
    lines = [
        Line(
            external_id=str(item["Id"]), sku=(item.get("ProductCode") or "").strip() or None,
            name=item.get("Name") or "", quantity=to_float(item.get("Quantity") or 1, "Quantity"),
            price_unit=optional_float(item.get("UnitPrice"), "UnitPrice"),
            discount=optional_float(item.get("Discount"), "Discount"),
            total=optional_float(item.get("TotalPrice"), "TotalPrice"),
            billing_model=item.get("Billing_Model__c"), milestones=item.get("Milestones__c"),
        )
        for item in line_items
    ]
    return Engagement(
        deal_model="Opportunity", deal_id=str(sobject["Id"]), name=sobject.get("Name") or "",
        amount=optional_float(sobject.get("Amount"), "Amount"),
        # no currency (a single-currency org): the legal entity's, not a guess from the account
        currency=(sobject.get("CurrencyIsoCode") or "").strip().upper() or None,
        customer=customer, lines=lines, po_number=sobject.get("PO_Number__c"),
        legal_entity=sobject.get("Legal_Entity__c"), source=sobject,
    )


def read_won_opportunity(request: Callable[..., Any], opp_id: str, query: str, context: dict) -> Engagement:
    """The Opportunity ``opp_id``, its Account and its products (``query``, all pages) read over
    REST as an engagement, when Salesforce says it is won now.

    Outbound messages are unsigned: the message only says where to look. Whether the
    Opportunity is won, its amount, currency, legal entity and PO come from this read.
    ``context`` receives what is learnt on the way, for the exception desk.
    """
    opportunity = read_deal(request, f"{API}/sobjects/Opportunity/{opp_id}", f"Opportunity {opp_id}", "Salesforce")
    if not is_won(opportunity):
        raise IgnoreEvent(
            f"opportunity {opp_id} is not won in Salesforce (IsWon {opportunity.get('IsWon')!r}, stage "
            f"{opportunity.get('StageName')!r}), whatever the outbound message said: no order is made")
    amount = opportunity.get("Amount")
    context.update(reference=opportunity.get("Name") or context.get("reference"),
                   currency=opportunity.get("CurrencyIsoCode"),
                   amount=float(amount) if isinstance(amount, (int, float)) else None)
    account_id = opportunity.get("AccountId")
    if not account_id:
        raise BusinessError(f"Opportunity {opp_id} has no account.", reason="missing_customer")
    try:
        check_id(account_id)
    except ValueError as exc:
        raise PermanentError(str(exc), reason="malformed") from None
    account = request("GET", f"{API}/sobjects/Account/{account_id}").json()
    context["customer"] = account.get("Name")
    answer = request("GET", f"{API}/query", params={"q": query}).json()
    records = list(answer.get("records", []))
    while not answer.get("done", True) and answer.get("nextRecordsUrl"):
        answer = request("GET", answer["nextRecordsUrl"]).json()
        records.extend(answer.get("records", []))
    try:
        return engagement(opportunity, account, records)
    except (KeyError, ValueError) as exc:
        raise PermanentError(f"Opportunity {opp_id} cannot be read: {exc}", reason="malformed") from None
