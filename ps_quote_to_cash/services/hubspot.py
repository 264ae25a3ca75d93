"""HubSpot CRM v3 objects -> canonical engagement."""

from collections.abc import Callable, Collection, Iterable
from typing import Any
from urllib.parse import quote

from odoo.addons.ps_integration_hub.services.errors import BusinessError, IgnoreEvent, PermanentError

from .engagement import Contact, Customer, Engagement, Line, domain_of, is_won_stage, optional_float, read_deal

# The won stage of HubSpot's default pipeline. The won stages are data (the entries of the
# Deal stage value map valued "won", custom pipelines' numeric stage ids among them): these
# are the stages known without the map, when a database no longer has it.
CLOSED_WON = "closedwon"
WON_STAGES = frozenset({CLOSED_WON})

DEAL_PROPERTIES = [
    "dealname", "dealstage", "amount", "deal_currency_code", "closedate", "po_number",
    "legal_entity", "payment_terms", "project_template",
]
# The company properties kept in sync by company.propertyChange are a field mapping now
# (data/ps_hub_mapping_data.xml, "HubSpot company -> customer"), no longer a constant here.
# price is the unit price; discount an amount off each unit, hs_discount_percentage a
# percentage of the line; amount the line's net total, which HubSpot calculates from them
LINE_PROPERTIES = [
    "name", "hs_sku", "quantity", "price", "discount", "hs_discount_percentage", "amount",
    "billing_model", "milestones", "recurringbillingfrequency",
]
# what a company webhook needs to match or create its customer
COMPANY_PROPERTIES = ["name", "domain", "vat_number", "address", "city", "zip", "country", "phone"]


def is_stage_change(webhook_event: dict) -> bool:
    """A deal.propertyChange of the deal stage (to any stage)."""
    return (webhook_event.get("subscriptionType") == "deal.propertyChange"
            and webhook_event.get("propertyName") == "dealstage")


def is_closed_won(webhook_event: dict, won_stages: Collection[str]) -> bool:
    """A deal.propertyChange that moves the deal stage to one of ``won_stages`` (the stage
    ids of the pipelines' won stages: ``closedwon`` in the default pipeline, numeric ids in
    custom pipelines)."""
    return is_stage_change(webhook_event) and is_won_stage(webhook_event.get("propertyValue"), won_stages)


def deal_stage(deal: dict) -> str | None:
    """The stage of a deal as HubSpot answered it."""
    return (deal.get("properties") or {}).get("dealstage")


def association_ids(deal: dict, kind: str) -> list[str]:
    """Ids of the deal's associated objects (HubSpot names line items "line items")."""
    assoc = deal.get("associations") or {}
    block = assoc.get(kind) or assoc.get(kind.replace("_", " ")) or {}
    return [str(r["id"]) for r in block.get("results", []) if r.get("id")]


def _number(props: dict, name: str) -> float | None:
    return optional_float(props.get(name), name)


def customer(company: dict) -> Customer:
    """The customer of a HubSpot company, as read from the CRM v3 API."""
    cprops = company.get("properties") or {}
    return Customer(
        external_model="company", external_id=str(company["id"]),
        name=cprops.get("name") or f"HubSpot company {company['id']}",
        vat=cprops.get("vat_number"), domain=domain_of(cprops.get("domain")),
        street=cprops.get("address"), city=cprops.get("city"), zip=cprops.get("zip"),
        country=cprops.get("country"), phone=cprops.get("phone"), source=company,
    )


def line(item: dict) -> Line:
    """An engagement line of a HubSpot line item."""
    p = item.get("properties") or {}
    quantity = _number(p, "quantity")
    return Line(
        external_id=str(item["id"]), sku=(p.get("hs_sku") or "").strip() or None,
        name=p.get("name") or "", quantity=1.0 if quantity is None else quantity,
        price_unit=_number(p, "price"), discount=_number(p, "hs_discount_percentage"),
        unit_discount=_number(p, "discount"), total=_number(p, "amount"),
        billing_model=p.get("billing_model"), milestones=p.get("milestones"),
    )


def engagement(deal: dict, company: dict, contact: dict | None, line_items: list[dict]) -> Engagement:
    """Canonical engagement of a HubSpot deal read with its associations."""
    props = deal.get("properties") or {}
    person = None
    if contact:
        p = contact.get("properties") or {}
        name = " ".join(x for x in (p.get("firstname"), p.get("lastname")) if x)
        person = Contact(
            external_model="contact", external_id=str(contact["id"]),
            name=name or p.get("email") or f"HubSpot contact {contact['id']}",
            email=p.get("email"), phone=p.get("phone"), function=p.get("jobtitle"),
        )
    return Engagement(
        deal_model="deal", deal_id=str(deal["id"]), name=props.get("dealname") or "",
        amount=_number(props, "amount"),
        currency=(props.get("deal_currency_code") or "").strip().upper() or None,
        customer=customer(company), contact=person, lines=[line(item) for item in line_items],
        po_number=props.get("po_number"), legal_entity=props.get("legal_entity"),
        payment_terms=props.get("payment_terms"), source=deal,
    )


def read_closed_won(request: Callable[..., Any], deal_id: str, context: dict, won_stages: Collection[str],
                    extra_properties: Iterable[str] = ()) -> Engagement:
    """The deal ``deal_id`` read from HubSpot (its company, contact and line items) as an
    engagement, when HubSpot says it is at one of ``won_stages`` now.

    ``request(method, path, **kwargs)`` calls HubSpot's API (the connector's, which raises
    the hub's errors); ``context`` receives what is learnt of the deal on the way, for the
    exception desk, even when the read fails. ``extra_properties``: the deal properties the
    active field mapping reads besides ``DEAL_PROPERTIES``.
    """
    properties = list(dict.fromkeys([*DEAL_PROPERTIES, *extra_properties]))
    deal = read_deal(request, f"/crm/v3/objects/deals/{deal_id}", f"Deal {deal_id}", "HubSpot",
                     params={"associations": "companies,contacts,line_items",
                             "properties": ",".join(properties)})
    props = deal.get("properties") or {}
    context.update(reference=props.get("dealname") or context.get("reference"),
                   currency=props.get("deal_currency_code"), amount=props.get("amount"))
    # the webhook may be a retry, a replay or an edit of an old change: the deal decides
    if not is_won_stage(deal_stage(deal), won_stages):
        raise IgnoreEvent(
            f"deal {deal_id} is at stage {deal_stage(deal)!r} in HubSpot now, not a won stage "
            f"({', '.join(map(repr, sorted(won_stages))) or 'none'}): it is no longer won, so no order is made")
    company_ids = association_ids(deal, "companies")
    if not company_ids:
        raise BusinessError(f"Deal {deal_id} has no associated company: associate one in HubSpot "
                            "and retry.", reason="missing_customer")
    company = request("GET", f"/crm/v3/objects/companies/{quote(company_ids[0])}").json()
    context["customer"] = (company.get("properties") or {}).get("name")
    contact_ids = association_ids(deal, "contacts")
    contact = request("GET", f"/crm/v3/objects/contacts/{quote(contact_ids[0])}").json() if contact_ids else None
    line_ids = association_ids(deal, "line_items")
    items = []
    if line_ids:
        items = request(
            "POST", "/crm/v3/objects/line_items/batch/read",
            json={"inputs": [{"id": i} for i in line_ids], "properties": LINE_PROPERTIES},
        ).json().get("results", [])
        missing = set(line_ids) - {str(i["id"]) for i in items}
        if missing:
            raise BusinessError(f"HubSpot did not return line items {sorted(missing)} of deal {deal_id}.",
                                reason="missing_line_items")
    try:
        return engagement(deal, company, contact, items)
    except (KeyError, ValueError) as exc:
        raise PermanentError(f"HubSpot deal {deal_id} cannot be read: {exc}", reason="malformed") from None
