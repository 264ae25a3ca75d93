"""Salesforce Opportunity outbound message + REST reads -> canonical engagement."""

import re

from .engagement import Customer, Engagement, Line, domain_of, optional_float, to_float

API = "/services/data/v62.0"
_SF_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def is_closed_won(sobject: dict) -> bool:
    """The outbound message names a won opportunity."""
    return str(sobject.get("IsWon", "")).lower() == "true" or sobject.get("StageName") == "Closed Won"


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
        phone=account.get("Phone"),
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
        legal_entity=sobject.get("Legal_Entity__c"),
    )
