import dataclasses
import re
from collections import defaultdict

import psycopg2.errors

from odoo import api, fields, models
from odoo.fields import Command, Domain
from odoo.tools import SQL

from odoo.addons.ps_integration_hub.services import mapping as mp
from odoo.addons.ps_integration_hub.services.errors import BusinessError, HubError, TransientError

from ..services.engagement import domain_of, is_free_mail, line_net_total, normalize_vat, order_line_prices

FREE_MAIL_PARAM = "ps_quote_to_cash.free_mail_domains"
# The host of a partner's website and of its e-mail, in SQL: the expressions of the indexes
# res.partner gets here (models/res_partner.py), which the customer matching searches by.
WEBSITE_HOST = (r"regexp_replace(regexp_replace(split_part(regexp_replace(lower(btrim(website)), "
                r"'^[a-z][a-z0-9+.-]*://([^@/]*@)?', ''), '/', 1), ':[0-9]*$', ''), '^www\.', '')")
EMAIL_HOST = r"substring(lower(btrim(email)) from '@([^@]*)$')"
LOCK_TIMEOUT_MS = 5000
# the value map whose entries valued WON are the won deal stages (data/ps_hub_mapping_data.xml)
DEAL_STAGE_MAP, WON = "deal_stage", "won"
# the order fields the closed-won flow decides: a deal mapping's value for one must agree
FLOW_FIELDS = ("company_id", "partner_id", "partner_invoice_id", "currency_id", "pricelist_id", "order_line")
# the identity row another worker holds, or changed after this transaction's snapshot
_BUSY_ERRORS = (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected,
                psycopg2.errors.LockNotAvailable)


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
        business error stops that deal only); the orders are then created, bound to their
        deals and confirmed together.
        """
        results, prepared, cache = {}, [], {}
        for event, engagement in items:
            try:
                with self.env.cr.savepoint():
                    prepared.append((event, engagement, *self._q2c_prepare(event.connector_id, engagement, cache)))
            except HubError as exc:
                results[event.id] = exc
        if not prepared:
            return results
        companies = self.env["res.company"].browse({company.id for _e, _g, company, *_r in prepared})
        service = self.with_context(allowed_company_ids=list({*companies.ids, *self.env.companies.ids}))
        by_event = {}
        for company in companies:
            group = [(event, values) for event, _g, c, values, _t in prepared if c == company]
            created = service.env["sale.order"].with_company(company).create([values for _e, values in group])
            by_event.update(zip([event.id for event, _v in group], created, strict=True))
        orders = service.env["sale.order"].browse([by_event[event.id].id for event, *_rest in prepared])
        for event, _engagement, _company, values, _total in prepared:
            self._q2c_keep_crm_prices(by_event[event.id], values)
        # bound before they are confirmed: what the confirmation sets off (an automation rule
        # pushing the order to its deal) finds the deal
        self._q2c_bind([
            (event.connector_id, engagement.deal_model, engagement.deal_id, by_event[event.id])
            for event, engagement, *_rest in prepared
        ])
        orders.action_confirm()
        orders.flush_recordset(["currency_id", "amount_untaxed"])  # computed for all orders at once
        for event, engagement, _company, values, total in prepared:
            self._q2c_check_order(by_event[event.id], engagement, values, total)
        results.update(by_event)
        return results

    def _q2c_keep_crm_prices(self, order, values):
        """The CRM's prices and discounts stand: no pricelist rule applies on top of them."""
        for line, command in zip(order.order_line, values["order_line"], strict=True):
            wanted = {name: command[2][name] for name in ("price_unit", "discount")}
            if any(line[name] != value for name, value in wanted.items()):
                line.write(wanted)

    def _q2c_check_order(self, order, engagement, values, total):
        """The order Odoo computed is the deal: same currency and total.

        A failure here is raised after the orders of the batch were made: the batch is
        rolled back and its deals handled one by one, so only this deal becomes an exception.
        """
        currency = order.currency_id
        if currency.id != values["currency_id"]:
            raise BusinessError(
                f"Deal {engagement.deal_id}: the order came out in {currency.name}, not in the deal's "
                f"{self.env['res.currency'].browse(values['currency_id']).name}.", reason="currency_mismatch")
        if currency.compare_amounts(order.amount_untaxed, total):
            computed = self._q2c_format(order.amount_untaxed, currency)
            raise BusinessError(
                f"Deal {engagement.deal_id}: the order Odoo computed comes to {computed} untaxed, not the deal's "
                f"{self._q2c_format(total, currency)}: check the products' taxes (a tax included in the price) "
                "and pricing, then retry.", reason="amount_mismatch")

    def _q2c_prepare(self, connector, engagement, cache=None):
        """(company, sale order values, expected untaxed total) of an engagement.

        Customer and contact are upserted, after every check that needs no customer.
        """
        cache = {} if cache is None else cache
        company = self._q2c_company(connector, engagement)
        service = self.with_company(company).with_context(
            allowed_company_ids=list({company.id, *self.env.companies.ids}))
        mapping = self._q2c_mapping(connector, engagement)
        mapped = service._q2c_mapped_values(mapping, engagement, company, cache) if mapping else None
        # a deal without a currency is in the legal entity's, said so on the order
        currency = service._q2c_currency(engagement) or company.currency_id
        products = service._q2c_products(company, engagement)
        prices, total = service._q2c_prices(engagement, currency)
        partner = service._q2c_customer(connector, company, engagement.customer)
        contact = service._q2c_contact(connector, partner, engagement.contact)
        values = service._q2c_order_values(company, currency, partner, contact, products, prices, engagement, cache,
                                           mapped=mapped is not None)
        if mapped is not None:
            values = self._q2c_merge_mapped(values, mapped, mapping, engagement)
        return company, values, total

    # ------------------------------------------------------------------ field mapping

    @api.model
    def _q2c_mapping(self, connector, engagement):
        """The active mapping of the engagement's deals (HubSpot deal, Salesforce Opportunity)
        into sale orders, or an empty recordset: none is active, or the engagement does not
        carry the deal as the CRM answered it."""
        if engagement.source is None:
            return self.env["ps.hub.mapping"]
        return self.env["ps.hub.mapping"]._hub_active(connector, engagement.deal_model, model="sale.order")

    @api.model
    def _q2c_won_stages(self, built_in):
        """The deal stages that are won: the vendor values the *Deal stage* value map
        (``deal_stage``) gives ``won``, so that an administrator adds a HubSpot custom
        pipeline's won stage id, or a Salesforce org's own won stage, as one entry. Cached
        (``ps.hub.value.map._hub_external_values``): a changed entry counts from the next event.

        Without an active Deal stage map (deleted or archived): the vendor's ``built_in``
        stages (``hubspot.WON_STAGES``, closedwon; ``salesforce.WON_STAGES``, Closed Won), so
        that closed-won deals keep making orders. An active map decides alone: an entry
        valued otherwise is not won, and a map without a won entry wins no stage.
        """
        won = self.env["ps.hub.value.map"]._hub_external_values(DEAL_STAGE_MAP, WON)
        return built_in if won is None else won

    @api.model
    def _q2c_mapped_properties(self, connector, deal_model):
        """The names of the vendor properties (``properties.<name>``) the active mapping of
        ``deal_model`` reads: a HubSpot deal is read with them."""
        mapping = self.env["ps.hub.mapping"]._hub_active(connector, deal_model, model="sale.order")
        names = []
        for line in mapping.line_ids:
            try:
                keys = mp.parse_path(line.source_path)
            except mp.MappingError:
                continue
            if len(keys) >= 2 and keys[0] == "properties":
                names.append(keys[1])
        return names

    def _q2c_mapped_values(self, mapping, engagement, company, cache):
        """The order values ``mapping`` reads from the deal (the fields the CRM does not own
        left out: ownership rules); a BusinessError (mapping_failed) naming the fields and the
        mapping when a value is missing, not found, or of another company than the order's."""
        key = ("applier", mapping.id)
        if key not in cache:
            cache[key] = mapping._hub_applier(lookups=cache.setdefault("lookups", {}))
        result = cache[key](engagement.source)
        problems = result.problems()
        Order = self.env["sale.order"]
        for name, value in result.values.items() if result.ok else ():
            field = Order._fields.get(name)
            if not value or field is None or field.type != "many2one":
                continue
            record = self.env[field.comodel_name].sudo().browse(value).exists()
            other = "company_id" in record._fields and record.company_id
            if not record:
                problems.append(f"{name}: record {value} does not exist")
            elif other and other != company:
                problems.append(f"{name}: {record.display_name} belongs to {other.name}, the order to {company.name}")
        if problems:
            crm = "HubSpot" if engagement.deal_model == "deal" else "Salesforce"
            raise BusinessError(
                f"Deal {engagement.deal_id}: {'; '.join(problems)}. Correct the value in {crm} or the mapping "
                f"{mapping.display_name}, then retry.", reason="mapping_failed")
        return {name: value for name, value in result.values.items() if value not in (None, False, "")}

    def _q2c_merge_mapped(self, values, mapped, mapping, engagement):
        """The order ``values`` with the mapping's on top.

        The fields the flow decides itself (company, customer, currency, pricelist, lines) are
        not the mapping's to change: a value of the mapping for one of them must be the
        flow's (a legal entity's company is chosen through the value map legal_entity before
        the customer is), else the deal is a business error (mapping_failed).
        """
        values = dict(values)
        for name in FLOW_FIELDS:
            if name in mapped and mapped[name] != values.get(name):
                raise BusinessError(
                    f"Deal {engagement.deal_id}: the mapping {mapping.display_name} gives {name} "
                    f"{self._q2c_flow_value(name, mapped[name])}, but the "
                    f"order is made for {self._q2c_flow_value(name, values.get(name))}: the closed-won flow decides "
                    f"{name} (for the company, through the value map legal_entity). Correct the mapping, then retry.",
                    reason="mapping_failed")
        values.update({name: value for name, value in mapped.items() if name not in FLOW_FIELDS})
        return values

    def _q2c_flow_value(self, name, value):
        model = self.env["sale.order"]._fields[name].comodel_name if name != "order_line" else None
        return self.env[model].sudo().browse(value).display_name if model and value else value

    def _q2c_company(self, connector, engagement):
        if not engagement.legal_entity:
            return connector.company_id
        # the CRM's spelling an administrator mapped (value map legal_entity), else the company's name
        company = self.env["ps.hub.value.map"]._hub_lookup("legal_entity", engagement.legal_entity)
        if company:
            return company
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

    @api.model
    def _q2c_format(self, amount, currency):
        return f"{currency.name} {amount:,.{currency.decimal_places}f}"

    def _q2c_prices(self, engagement, currency):
        """([(price_unit, discount %)] per line, total) such that the order is the deal.

        A blank price is an exception, not a price of 0; so is a deal amount that differs
        from its lines' total after discounts by more than the currency's rounding (one cent
        is a rounding difference between the CRM's and our arithmetic, two are not).
        """
        deal = engagement.deal_id
        unpriced = [line.name or line.sku for line in engagement.lines if line.price_unit is None]
        if unpriced:
            raise BusinessError(f"Line items without a price on deal {deal}: {unpriced}: price them in the CRM, "
                                "then retry.", reason="missing_price")
        digits = currency.decimal_places
        total = float(sum(line_net_total(line, digits) for line in engagement.lines))
        if engagement.amount is not None and currency.compare_amounts(
                abs(engagement.amount - total), currency.rounding) > 0:
            raise BusinessError(
                f"Deal {deal} ({engagement.name}): the deal amount is {self._q2c_format(engagement.amount, currency)} "
                f"but its line items add up to {self._q2c_format(total, currency)} after discounts: correct the "
                "deal or its line items in the CRM, then retry. Nothing was created.", reason="amount_mismatch")
        Precision = self.env["decimal.precision"]
        price_digits, discount_digits = Precision.precision_get("Product Price"), Precision.precision_get("Discount")
        prices = []
        for line in engagement.lines:
            price = order_line_prices(line, currency_digits=digits, price_digits=price_digits,
                                      discount_digits=discount_digits)
            if price is None:
                raise BusinessError(
                    f"Line item {line.name or line.sku} of deal {deal}: its total after discount, "
                    f"{self._q2c_format(float(line_net_total(line, digits)), currency)}, cannot be written as a "
                    f"unit price and a discount with {price_digits} and {discount_digits} decimals: correct it in "
                    "the CRM, or raise the decimal accuracy of Product Price, then retry.", reason="price_precision")
            prices.append(price)
        return prices, total

    # ------------------------------------------------------------------ customers

    def _q2c_customer(self, connector, company, customer):
        """The customer's partner (bound, matched or created); a HubError when it cannot be decided."""
        result = self._q2c_customers(connector, company, [customer])[customer.external_id]
        if isinstance(result, Exception):
            raise result
        return result

    @api.model
    def _q2c_free_mail_domains(self) -> list[str]:
        """The administrator's additions to the built-in list of free mail domains."""
        value = self.env["ir.config_parameter"].sudo().get_param(FREE_MAIL_PARAM) or ""
        return [d for d in re.split(r"[\s,;]+", value.lower()) if d]

    def _q2c_customers(self, connector, company, customers, created=None):
        """{external id: partner or HubError} of CRM customers, in one go.

        Bound first; else matched by VAT, then by web or mail domain (never a free mail
        domain); else created, one create for all (their external ids are added to the set
        ``created``). Several CRM records of one customer (duplicates in the CRM: same VAT,
        same domain) are all bound to that one partner.
        """
        Partner = self.env["res.partner"]
        customers = list({c.external_id: c for c in customers}.values())
        results = {}
        if not customers:
            return results
        bindings_sudo = self.env["ps.hub.binding"].sudo().search([
            ("connector_id", "=", connector.id),
            ("external_model", "in", list({c.external_model for c in customers})),
            ("external_id", "in", [c.external_id for c in customers]), ("res_model", "=", "res.partner")])
        existing = Partner.browse(bindings_sudo.mapped("res_id")).exists()
        bound = {(b.external_model, b.external_id): b.res_id for b in bindings_sudo if b.res_id in existing.ids}
        todo = []
        for customer in customers:
            partner_id = bound.get((customer.external_model, customer.external_id))
            if partner_id:
                results[customer.external_id] = Partner.browse(partner_id)
            else:
                todo.append(customer)
        if not todo:
            return results
        mapped = {}  # external id: the new customer's values the active customer mapping gives
        for customer in list(todo):
            try:
                mapped[customer.external_id] = self._q2c_customer_mapped(connector, customer)
            except BusinessError as exc:
                results[customer.external_id] = exc
                todo.remove(customer)
        # a mapped name or VAT is the one the customer is matched by
        todo = [dataclasses.replace(c, name=mapped[c.external_id].get("name") or c.name,
                                    vat=mapped[c.external_id].get("vat", c.vat)) for c in todo]
        if not todo:
            return results
        free = self._q2c_free_mail_domains()
        keys = {c.external_id: (normalize_vat(c.vat), None if is_free_mail(c.domain, free) else c.domain)
                for c in todo}
        self._q2c_lock_customers(connector, todo, keys)
        company_domain = Domain("company_id", "in", [company.id, False]) & Domain("is_company", "=", True)
        by_vat, by_domain = self._q2c_partners_by_vat(
            company_domain, {v for v, _d in keys.values() if v}), self._q2c_partners_by_domain(
            company_domain, {d for _v, d in keys.values() if d})
        matched, to_create, pending, countries = [], [], {}, {}
        for customer in todo:
            vat, domain = keys[customer.external_id]
            try:
                partner = self._q2c_match(customer, vat, domain, by_vat.get(vat, Partner),
                                          by_domain.get(domain, Partner))
            except BusinessError as exc:
                results[customer.external_id] = exc
                continue
            if partner:
                matched.append((customer, partner))
                continue
            # a customer created in this batch already: CRM duplicates of one new customer
            index = pending.get(("vat", vat)) if vat else None
            if index is None and domain and ("domain", domain) in pending:
                index = pending["domain", domain]
                other = normalize_vat(to_create[index][1].get("vat"))
                if vat and other and other != vat:
                    results[customer.external_id] = BusinessError(
                        f"Customer {customer.name!r}: {to_create[index][1]['name']} has the same domain {domain} "
                        f"but VAT {to_create[index][1]['vat']}, not {customer.vat}: correct the VAT, then retry.",
                        reason="customer_conflict")
                    continue
            if index is None:
                index = len(to_create)
                values = {**self._q2c_partner_values(customer, domain, countries), **mapped[customer.external_id]}
                if not domain:
                    values["website"] = False  # a free mail domain is no customer's website, mapped or not
                to_create.append(([], values))
            to_create[index][0].append(customer)
            pending.update({key: index for key in (("vat", vat), ("domain", domain)) if key[1]})
        if to_create:
            new_partners = Partner.create([values for _c, values in to_create])
            for (group, _values), partner in zip(to_create, new_partners, strict=True):
                matched.extend((customer, partner) for customer in group)
                if created is not None:
                    created.update(customer.external_id for customer in group)
        self._q2c_bind([(connector, c.external_model, c.external_id, p) for c, p in matched])
        results.update({customer.external_id: partner for customer, partner in matched})
        return results

    def _q2c_customer_mapped(self, connector, customer) -> dict:
        """The values of a customer to create that the active mapping of its CRM object (HubSpot
        company, Salesforce Account) gives, on top of the flow's own; {} without such a mapping
        (or a CRM record). A value the mapping cannot read is a BusinessError (mapping_failed)."""
        if customer.source is None:
            return {}
        mapping = self.env["ps.hub.mapping"]._hub_active(connector, customer.external_model, model="res.partner")
        if not mapping:
            return {}
        # a new customer takes all of the CRM's values: ownership rules guard the updates of
        # existing ones (as the flow's own values, the VAT included)
        result = mapping._hub_apply(customer.source, ownership=False)
        if not result.ok:
            crm = "HubSpot" if customer.external_model == "company" else "Salesforce"
            raise BusinessError(
                f"Customer {customer.name!r} ({customer.external_model} {customer.external_id}): "
                f"{'; '.join(result.problems())}. Correct the value in {crm} or the mapping {mapping.display_name}, "
                "then retry.", reason="mapping_failed")
        # the flow decides whose customer it is: a company's own, shared by its companies
        return {name: value for name, value in result.values.items()
                if name not in ("company_id", "is_company") and value not in (None, "")}

    def _q2c_lock_customers(self, connector, customers, keys):
        """Hold the identity rows of customers about to be matched or created, until commit.

        TransientError when another worker holds one, or committed it after this transaction
        began (its customer is invisible here): the retry will see that customer.
        """
        rows = set()
        for customer in customers:
            vat, domain = keys[customer.external_id]
            rows.add(f"ext:{connector.id}:{customer.external_model}:{customer.external_id}")
            rows.update(f"{kind}:{value}" for kind, value in (("vat", vat), ("domain", domain)) if value)
        try:
            with self.env.cr.savepoint(flush=False):
                # waiting for the other worker's commit is bounded: its batch may run long
                self.env.cr.execute(SQL(
                    "SET LOCAL lock_timeout = %s; "
                    "INSERT INTO ps_q2c_customer_lock (key, locked_at) VALUES %s "
                    "ON CONFLICT (key) DO UPDATE SET locked_at = EXCLUDED.locked_at; "
                    "SET LOCAL lock_timeout TO DEFAULT",
                    LOCK_TIMEOUT_MS,
                    SQL(", ").join(SQL("(%s, now() AT TIME ZONE 'UTC')", key) for key in sorted(rows))))
        except _BUSY_ERRORS:
            names = ", ".join(sorted({c.name for c in customers}))
            raise TransientError(
                f"Another worker is matching or creating customer {names} at this moment: retried shortly.",
                reason="customer_busy", retry_after=1) from None

    def _q2c_partners_by_vat(self, company_domain, vats):
        """{normalized VAT: partners} (compared normalized in SQL: 'GB 123.456' is 'GB123456')."""
        if not vats:
            return {}
        self.env["res.partner"].flush_model(["vat"])
        self.env.cr.execute(SQL(
            "SELECT id, regexp_replace(upper(vat), '[^[:alnum:]]', '', 'g') FROM res_partner "
            "WHERE vat IS NOT NULL AND regexp_replace(upper(vat), '[^[:alnum:]]', '', 'g') = ANY(%s)",
            sorted(vats)))
        vat_of = dict(self.env.cr.fetchall())
        found = defaultdict(lambda: self.env["res.partner"])
        if vat_of:
            for partner in self.env["res.partner"].search(company_domain & Domain("id", "in", list(vat_of))):
                found[vat_of[partner.id]] |= partner
        return found

    def _q2c_partners_by_domain(self, company_domain, domains):
        """{domain: partners whose website or e-mail is on it}."""
        if not domains:
            return {}
        # The host of each website and e-mail, compared to all domains at once: an ilike per
        # domain made a batch of 50 new companies scan every partner 100 times. domain_of()
        # decides below; this only has to find at least what it would.
        self.env["res.partner"].flush_model(["website", "email", "is_company"])
        self.env.cr.execute(SQL(
            "SELECT id FROM res_partner WHERE is_company AND (%s = ANY(%s) OR %s = ANY(%s))",
            SQL(WEBSITE_HOST), sorted(domains), SQL(EMAIL_HOST), sorted(domains)))
        ids = [row[0] for row in self.env.cr.fetchall()]
        if not ids:
            return {}
        candidates = self.env["res.partner"].search(company_domain & Domain("id", "in", ids))
        found = defaultdict(lambda: self.env["res.partner"])
        for partner in candidates:
            for domain in {domain_of(partner.website), domain_of(partner.email)} & domains:
                found[domain] |= partner
        return found

    def _q2c_match(self, customer, vat, domain, by_vat, by_domain):
        """The one partner ``customer`` is, an empty recordset for a new one, or a customer_conflict."""
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
                f"{domain} to {by_domain.display_name}: correct one of them, then retry.",
                reason="customer_conflict",
            )
        if by_domain and not by_vat and vat and by_domain.vat and normalize_vat(by_domain.vat) != vat:
            raise BusinessError(
                f"Customer {customer.name!r}: {by_domain.display_name} has the same domain but VAT "
                f"{by_domain.vat}, not {customer.vat}: correct the VAT, then retry.",
                reason="customer_conflict",
            )
        return by_vat or by_domain

    def _q2c_partner_values(self, customer, domain, countries):
        country = self.env["res.country"]
        if customer.country:
            if customer.country not in countries:
                countries[customer.country] = country.search([
                    "|", ("name", "=ilike", customer.country), ("code", "=ilike", customer.country)], limit=1)
            country = countries[customer.country]
        return {
            "name": customer.name, "is_company": True, "company_id": False,
            # a free mail domain is no website of the customer's
            "vat": customer.vat, "website": domain and f"https://{domain}",
            "street": customer.street, "city": customer.city, "zip": customer.zip,
            "country_id": country.id or False, "phone": customer.phone,
        }

    def _q2c_bind(self, entries):
        """Bind [(connector, external_model, external_id, record)]: one search, one create.

        A binding left pointing to a deleted record is pointed to the new one: creating a
        second binding of the external id would fail forever, however often retried.
        """
        if not entries:
            return
        Binding = self.env["ps.hub.binding"]
        stale_sudo = Binding.sudo().search([
            ("connector_id", "in", list({conn.id for conn, *_r in entries})),
            ("external_model", "in", list({model for _c, model, *_r in entries})),
            ("external_id", "in", [str(external_id) for _c, _m, external_id, _r in entries])])
        stale = {(b.connector_id.id, b.external_model, b.external_id): b for b in stale_sudo}
        new = []
        for conn, model, external_id, record in entries:
            binding = stale.get((conn.id, model, str(external_id)))
            if binding:
                binding.write({"res_model": record._name, "res_id": record.id, "last_sync": fields.Datetime.now()})
            else:
                new.append((conn, model, external_id, record))
        if new:
            Binding._hub_bind_many(new)

    def _q2c_contact(self, connector, partner, contact):
        if not contact:
            return None
        Binding = self.env["ps.hub.binding"]
        bound = Binding._hub_lookup(connector, contact.external_model, contact.external_id)
        if bound:
            return bound
        person = self.env["res.partner"]
        if contact.email:
            # no limit: "LIMIT 1 ORDER BY complete_name" walks the name index past every partner
            person = person.search([("parent_id", "=", partner.id), ("email", "=ilike", contact.email)])[:1]
        if not person:
            person = person.create({
                "parent_id": partner.id, "type": "contact", "name": contact.name,
                "email": contact.email, "phone": contact.phone, "function": contact.function,
            })
        Binding._hub_bind(connector, contact.external_model, contact.external_id, person)
        return person

    # ------------------------------------------------------------------ orders

    def _q2c_pricelist(self, company, currency, cache):
        """A pricelist without rules in ``currency``: the order's currency, and no discount of its own.

        The partner's pricelist would impose its currency and its discounts on the CRM's prices.
        """
        key = ("pricelist", company.id, currency.id)
        if key not in cache:
            Pricelist = self.env["product.pricelist"]
            pricelist = Pricelist.search([
                ("currency_id", "=", currency.id), ("company_id", "in", [company.id, False]),
                ("item_ids", "=", False)], order="company_id, id", limit=1)
            cache[key] = pricelist or Pricelist.create({
                "name": f"CRM prices ({currency.name})", "currency_id": currency.id, "company_id": company.id,
            })
        return cache[key]

    def _q2c_order_values(self, company, currency, partner, contact, products, prices, engagement, cache,
                          mapped=False):
        """The sale order values of ``engagement``. ``mapped``: a field mapping reads the deal,
        so the fields the code reads from the deal itself when none does (PO, name, payment
        terms) are left to it; the origin is the deal's id unless the mapping gives one."""
        if mapped:
            return self._q2c_order_values_base(company, currency, partner, contact, products, prices, engagement,
                                               cache)
        values = self._q2c_order_values_base(company, currency, partner, contact, products, prices, engagement,
                                             cache)
        values.update(client_order_ref=engagement.po_number,
                      origin=engagement.name[:256] if engagement.name else engagement.deal_id)
        if engagement.payment_terms:
            term = self.env["ps.hub.value.map"]._hub_lookup("payment_terms", engagement.payment_terms)
            if term and term.company_id not in (company, self.env["res.company"]):
                term = None
            term = term or self.env["account.payment.term"].search(
                [("name", "=ilike", engagement.payment_terms), ("company_id", "in", [company.id, False])], limit=1)
            if term:
                values["payment_term_id"] = term.id
        return values

    def _q2c_order_values_base(self, company, currency, partner, contact, products, prices, engagement, cache):
        """The order values the flow decides: customer, company, currency, pricelist, lines."""
        values = {
            "partner_id": partner.id,
            "company_id": company.id,
            "pricelist_id": self._q2c_pricelist(company, currency, cache).id,
            "currency_id": currency.id,
            "origin": engagement.deal_id,
            "order_line": [
                Command.create({
                    "product_id": products[line.sku].id,
                    "name": line.name or products[line.sku].display_name,
                    "product_uom_qty": line.quantity,
                    "price_unit": price_unit,
                    "discount": discount,
                })
                for line, (price_unit, discount) in zip(engagement.lines, prices, strict=True)
            ],
        }
        if contact:
            values["partner_invoice_id"] = partner.id
        return values
