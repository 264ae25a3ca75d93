from odoo import api, models
from odoo.fields import Command, Domain
from odoo.tools import SQL

from odoo.addons.ps_integration_hub.services.errors import BusinessError, HubError

from ..services.engagement import domain_of, normalize_vat


class PsQ2cEngagement(models.AbstractModel):
    _name = "ps.q2c.engagement"
    _description = "Closed-won engagement -> customer, order, project"

    @api.model
    def _q2c_apply(self, event, engagement):
        """Customer, contact, confirmed sale order (and so its project) for ``engagement``."""
        result = self._q2c_apply_many([(event, engagement)])[event.id]
        if isinstance(result, Exception):
            raise result
        return result

    @api.model
    def _q2c_apply_many(self, items):
        """{event id: confirmed order or HubError} for [(event, engagement)].

        Each engagement's checks and customer are resolved in a savepoint of its own (a
        business error stops that deal only); the orders are then created, confirmed and
        bound together.
        """
        results, prepared = {}, []
        for event, engagement in items:
            try:
                with self.env.cr.savepoint():
                    prepared.append((event, engagement, *self._q2c_prepare(event.connector_id, engagement)))
            except HubError as exc:
                results[event.id] = exc
        if not prepared:
            return results
        companies = self.env["res.company"].browse({company.id for _e, _g, company, _v in prepared})
        service = self.with_context(allowed_company_ids=list({*companies.ids, *self.env.companies.ids}))
        by_event = {}
        for company in companies:
            group = [(event, values) for event, _g, c, values in prepared if c == company]
            created = service.env["sale.order"].with_company(company).create([values for _e, values in group])
            by_event.update(zip([event.id for event, _v in group], created, strict=True))
        orders = service.env["sale.order"].browse([by_event[event.id].id for event, *_rest in prepared])
        # prices come from the CRM, not from the pricelist
        for event, engagement, _company, _values in prepared:
            for line, src in zip(by_event[event.id].order_line, engagement.lines, strict=True):
                if line.price_unit != src.price_unit:
                    line.price_unit = src.price_unit
        orders.action_confirm()
        self.env["ps.hub.binding"]._hub_bind_many([
            (event.connector_id, engagement.deal_model, engagement.deal_id, by_event[event.id])
            for event, engagement, _company, _values in prepared
        ])
        results.update(by_event)
        return results

    def _q2c_prepare(self, connector, engagement):
        """(company, sale order values) of an engagement; customer and contact are upserted."""
        company = self._q2c_company(connector, engagement)
        service = self.with_company(company).with_context(
            allowed_company_ids=list({company.id, *self.env.companies.ids}))
        currency = service._q2c_currency(engagement)
        products = service._q2c_products(company, engagement)
        partner = service._q2c_customer(connector, company, engagement.customer)
        contact = service._q2c_contact(connector, partner, engagement.contact)
        return company, service._q2c_order_values(company, currency, partner, contact, products, engagement)

    def _q2c_company(self, connector, engagement):
        if not engagement.legal_entity:
            return connector.company_id
        company = self.env["res.company"].sudo().search(
            [("name", "=ilike", engagement.legal_entity.strip())], limit=2)
        if len(company) != 1:
            raise BusinessError(
                f"Legal entity {engagement.legal_entity!r} of deal {engagement.deal_id} matches "
                f"{'no' if not company else 'several'} Odoo companies: create it, or fix the deal, then retry.",
                reason="unknown_legal_entity",
            )
        return company

    def _q2c_currency(self, engagement):
        if not engagement.currency:
            return None
        currency = self.env["res.currency"].with_context(active_test=False).search(
            [("name", "=", engagement.currency)], limit=1)
        if not currency:
            raise BusinessError(f"Currency {engagement.currency} is unknown to Odoo.", reason="unknown_currency")
        if not currency.active:
            raise BusinessError(f"Currency {engagement.currency} is not active in Odoo: activate it and retry.",
                                reason="inactive_currency")
        return currency

    def _q2c_products(self, company, engagement):
        skus = [line.sku for line in engagement.lines]
        if not engagement.lines:
            raise BusinessError(f"Deal {engagement.deal_id} has no line items.", reason="missing_line_items")
        if None in skus:
            names = [line.name for line in engagement.lines if not line.sku]
            raise BusinessError(f"Line items without SKU on deal {engagement.deal_id}: {names}.",
                                reason="missing_product")
        found = self.env["product.product"].search([
            ("default_code", "in", skus), ("sale_ok", "=", True),
            ("company_id", "in", [company.id, False]),
        ])
        by_sku = {p.default_code: p for p in found}
        missing = sorted({s for s in skus if s not in by_sku})
        if missing:
            raise BusinessError(
                f"No sellable product with SKU {', '.join(missing)} in {company.name}: create the "
                "product (Internal Reference = SKU) and retry.",
                reason="missing_product",
            )
        return by_sku

    def _q2c_customer(self, connector, company, customer):
        Partner = self.env["res.partner"]
        Binding = self.env["ps.hub.binding"]
        bound = Binding._hub_lookup(connector, customer.external_model, customer.external_id)
        if bound:
            return bound
        vat = normalize_vat(customer.vat)
        by_vat = Partner.browse()
        company_domain = Domain("company_id", "in", [company.id, False]) & Domain("is_company", "=", True)
        if vat:
            # compared normalized in SQL: reading every partner with a VAT for each deal does not scale
            self.env["res.partner"].flush_model(["vat"])
            self.env.cr.execute(SQL(
                "SELECT id FROM res_partner WHERE vat IS NOT NULL "
                "AND regexp_replace(upper(vat), '[^[:alnum:]]', '', 'g') = %s", vat))
            same_vat = [row[0] for row in self.env.cr.fetchall()]
            if same_vat:
                by_vat = Partner.search(company_domain & Domain("id", "in", same_vat))
        by_domain = Partner.browse()
        if customer.domain:
            candidates = Partner.search(company_domain & (
                Domain("website", "ilike", customer.domain) | Domain("email", "=ilike", f"%@{customer.domain}")))
            by_domain = candidates.filtered(
                lambda p: customer.domain in (domain_of(p.website), domain_of(p.email)))
        if len(by_vat) > 1 or (not by_vat and len(by_domain) > 1):
            matches = by_vat if len(by_vat) > 1 else by_domain
            raise BusinessError(
                f"Customer {customer.name!r} matches several Odoo customers "
                f"({', '.join(matches.mapped('display_name'))}): merge them or link the event to one.",
                reason="customer_conflict",
            )
        if by_vat and by_domain and by_vat != by_domain:
            raise BusinessError(
                f"Customer {customer.name!r}: VAT {customer.vat} belongs to {by_vat.display_name} but domain "
                f"{customer.domain} to {by_domain.display_name}: correct one of them, then retry.",
                reason="customer_conflict",
            )
        partner = by_vat or by_domain
        if by_domain and not by_vat and vat and by_domain.vat and normalize_vat(by_domain.vat) != vat:
            raise BusinessError(
                f"Customer {customer.name!r}: {by_domain.display_name} has the same domain but VAT "
                f"{by_domain.vat}, not {customer.vat}: correct the VAT, then retry.",
                reason="customer_conflict",
            )
        if not partner:
            country = self.env["res.country"]
            if customer.country:
                country = country.search(["|", ("name", "=ilike", customer.country),
                                          ("code", "=ilike", customer.country)], limit=1)
            partner = Partner.create({
                "name": customer.name, "is_company": True, "company_id": False,
                "vat": customer.vat, "website": customer.domain and f"https://{customer.domain}",
                "street": customer.street, "city": customer.city, "zip": customer.zip,
                "country_id": country.id or False, "phone": customer.phone,
            })
        Binding._hub_bind(connector, customer.external_model, customer.external_id, partner)
        return partner

    def _q2c_contact(self, connector, partner, contact):
        if not contact:
            return None
        Binding = self.env["ps.hub.binding"]
        bound = Binding._hub_lookup(connector, contact.external_model, contact.external_id)
        if bound:
            return bound
        person = self.env["res.partner"]
        if contact.email:
            person = person.search([("parent_id", "=", partner.id), ("email", "=ilike", contact.email)], limit=1)
        if not person:
            person = person.create({
                "parent_id": partner.id, "type": "contact", "name": contact.name,
                "email": contact.email, "phone": contact.phone, "function": contact.function,
            })
        Binding._hub_bind(connector, contact.external_model, contact.external_id, person)
        return person

    def _q2c_pricelist(self, company, currency):
        if not currency or currency == company.currency_id:
            return None
        Pricelist = self.env["product.pricelist"]
        pricelist = Pricelist.search([("currency_id", "=", currency.id),
                                      ("company_id", "in", [company.id, False])], limit=1)
        return pricelist or Pricelist.create({
            "name": f"{currency.name} (integration)", "currency_id": currency.id, "company_id": company.id,
        })

    def _q2c_order_values(self, company, currency, partner, contact, products, engagement):
        pricelist = self._q2c_pricelist(company, currency)
        values = {
            "partner_id": partner.id,
            "company_id": company.id,
            "client_order_ref": engagement.po_number,
            "origin": engagement.name[:256] if engagement.name else engagement.deal_id,
            "order_line": [
                Command.create({
                    "product_id": products[line.sku].id,
                    "name": line.name or products[line.sku].display_name,
                    "product_uom_qty": line.quantity,
                    "price_unit": line.price_unit,
                })
                for line in engagement.lines
            ],
        }
        if pricelist:
            values["pricelist_id"] = pricelist.id
        if contact:
            values["partner_invoice_id"] = partner.id
        if engagement.payment_terms:
            term = self.env["account.payment.term"].search(
                [("name", "=ilike", engagement.payment_terms), ("company_id", "in", [company.id, False])], limit=1)
            if term:
                values["payment_term_id"] = term.id
        return values
