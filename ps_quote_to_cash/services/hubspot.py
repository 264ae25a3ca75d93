"""HubSpot CRM v3 objects -> canonical engagement."""

from .engagement import Contact, Customer, Engagement, Line, domain_of, to_float

DEAL_PROPERTIES = [
    "dealname", "dealstage", "amount", "deal_currency_code", "closedate", "po_number",
    "legal_entity", "payment_terms", "project_template",
]
# HubSpot company property -> res.partner field kept in sync by company.propertyChange
COMPANY_FIELDS = {
    "name": "name",
    "domain": "website",
    "phone": "phone",
    "address": "street",
    "city": "city",
    "zip": "zip",
    "vat_number": "vat",
}
LINE_PROPERTIES = [
    "name", "hs_sku", "quantity", "price", "billing_model", "milestones",
    "recurringbillingfrequency",
]


def is_closed_won(webhook_event: dict) -> bool:
    """A deal.propertyChange that moves the deal stage to closedwon."""
    return (
        webhook_event.get("subscriptionType") == "deal.propertyChange"
        and webhook_event.get("propertyName") == "dealstage"
        and webhook_event.get("propertyValue") == "closedwon"
    )


def association_ids(deal: dict, kind: str) -> list[str]:
    """Ids of the deal's associated objects (HubSpot names line items "line items")."""
    assoc = deal.get("associations") or {}
    block = assoc.get(kind) or assoc.get(kind.replace("_", " ")) or {}
    return [str(r["id"]) for r in block.get("results", []) if r.get("id")]


def engagement(deal: dict, company: dict, contact: dict | None, line_items: list[dict]) -> Engagement:
    """Canonical engagement of a HubSpot deal read with its associations."""
    props = deal.get("properties") or {}
    cprops = company.get("properties") or {}
    customer = Customer(
        external_model="company", external_id=str(company["id"]),
        name=cprops.get("name") or f"HubSpot company {company['id']}",
        vat=cprops.get("vat_number"), domain=domain_of(cprops.get("domain")),
        street=cprops.get("address"), city=cprops.get("city"), zip=cprops.get("zip"),
        country=cprops.get("country"), phone=cprops.get("phone"),
    )
    person = None
    if contact:
        p = contact.get("properties") or {}
        name = " ".join(x for x in (p.get("firstname"), p.get("lastname")) if x)
        person = Contact(
            external_model="contact", external_id=str(contact["id"]),
            name=name or p.get("email") or f"HubSpot contact {contact['id']}",
            email=p.get("email"), phone=p.get("phone"), function=p.get("jobtitle"),
        )
    lines = []
    for item in line_items:
        p = item.get("properties") or {}
        lines.append(Line(
            external_id=str(item["id"]), sku=(p.get("hs_sku") or "").strip() or None,
            name=p.get("name") or "", quantity=to_float(p.get("quantity") or 1, "quantity"),
            price_unit=to_float(p.get("price") or 0, "price"),
            billing_model=p.get("billing_model"), milestones=p.get("milestones"),
        ))
    return Engagement(
        deal_model="deal", deal_id=str(deal["id"]), name=props.get("dealname") or "",
        amount=to_float(props["amount"], "amount") if props.get("amount") else None,
        currency=(props.get("deal_currency_code") or "").upper() or None,
        customer=customer, contact=person, lines=lines,
        po_number=props.get("po_number"), legal_entity=props.get("legal_entity"),
        payment_terms=props.get("payment_terms"),
    )
