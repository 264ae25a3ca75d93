"""Declarative field mappings: a vendor's payload -> field values. Plain Python, no ORM.

In the spirit of OCA connector's ``Mapper.direct``: a mapping is a list of ``(source,
target)`` pairs, where a source is a path, or a path wrapped in modifiers that compose
(the innermost runs first, as ``none(convert(...))`` does in the connector)::

    direct = [
        ("properties.name", "name"),                         # dotted path
        (stripped("/properties/city"), "city"),                 # or a JSON pointer
        (url("properties.domain"), "website"),
        (required(money("properties.amount")), "amount"),
        (default(upper("properties.deal_currency_code"), "EUR"), "currency"),
        (lookup("properties.dealstage", "deal_stage"), "stage"),
    ]
    mapping = compile_mapping(direct, value_maps={"deal_stage": {"closedwon": "won"}})
    result = mapping.apply(payload)      # result.values, result.errors, result.missing

A mapping is compiled once (paths split, transforms resolved to functions, value maps
normalised) and applied to many payloads: a dry-run replays thousands of stored events.

Semantics, one rule at a time:

- the path is read; a missing key, a ``None`` and an empty string are "no value";
- with no value, the rule's ``default`` (a *source* value: it goes through the
  transforms, so a default may be looked up in a value map) takes its place;
- the transforms run in order; one that cannot read the value (``"abc"`` as money) puts
  a message in ``errors[target]`` and the target gets no value;
- a target still without value is in ``missing`` when the rule is required, otherwise
  it gets the mapping's ``empty`` value (``None``; Odoo passes ``False``);
- ``apply(payload, partial=True)`` reads a change that carries only some properties (a
  HubSpot ``propertyChange``): a rule whose path is absent from the payload is skipped,
  neither defaulted nor required.
"""

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on", "t"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "off", "f"})
# transforms an administrator chooses on a mapping line; "lookup" needs a value map
TRANSFORMS = ("strip", "upper", "lower", "title", "date", "datetime", "money", "boolean", "url", "lookup")


class MappingError(ValueError):
    """The mapping itself is wrong (a bad path, an unknown transform or value map)."""


class Unmatched(ValueError):
    """A value map has no entry for the value (the caller may resolve it another way)."""

    def __init__(self, value_map: str, value: Any):
        super().__init__(f"value map {value_map} has no entry for {value!r}")
        self.value_map = value_map
        self.value = value


# ---------------------------------------------------------------------------- declaration


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value comes from and what is done to it on the way."""

    path: str
    transforms: tuple[tuple[str, Any], ...] = ()
    default: Any = MISSING
    required: bool = False

    def then(self, name: str, argument: Any = None) -> "Source":
        """This source with one more transform."""
        return Source(self.path, (*self.transforms, (name, argument)), self.default, self.required)


SourceLike = str | Source


def source(value: SourceLike) -> Source:
    """A ``Source`` of a path or of a source."""
    if isinstance(value, Source):
        return value
    if isinstance(value, str):
        return Source(value)
    raise MappingError(f"a mapping source is a path or a Source, not {value!r}")


def stripped(src: SourceLike) -> Source:
    """Surrounding white space removed (a blank string is no value)."""
    return source(src).then("strip")


def upper(src: SourceLike) -> Source:
    return source(src).then("upper")


def lower(src: SourceLike) -> Source:
    return source(src).then("lower")


def title(src: SourceLike) -> Source:
    return source(src).then("title")


def as_date(src: SourceLike) -> Source:
    """A ``date`` of an ISO 8601 date or date-time, or of epoch milliseconds (HubSpot)."""
    return source(src).then("date")


def as_datetime(src: SourceLike) -> Source:
    """A naive UTC ``datetime`` (as Odoo stores them) of ISO 8601 or epoch milliseconds."""
    return source(src).then("datetime")


def money(src: SourceLike, digits: int = 2) -> Source:
    """A float rounded half away from zero to ``digits``; text that is not a number is an error."""
    return source(src).then("money", digits)


def boolean(src: SourceLike) -> Source:
    """True of true/yes/y/1/on, False of false/no/n/0/off (any case); anything else is an error."""
    return source(src).then("boolean")


def url(src: SourceLike) -> Source:
    """A web address: ``https://`` put before a bare domain (HubSpot's company ``domain``)."""
    return source(src).then("url")


def lookup(src: SourceLike, value_map: str) -> Source:
    """The value the value map ``value_map`` gives the source value (case and surrounding
    space ignored); a value the map does not know is an error."""
    return source(src).then("lookup", value_map)


def convert(src: SourceLike, function: Callable[[Any], Any]) -> Source:
    """Any function of the value, as the connector's ``convert`` (mappings written in code)."""
    return source(src).then("convert", function)


def default(src: SourceLike, value: Any) -> Source:
    """``value`` stands for the source when the payload has none."""
    s = source(src)
    return Source(s.path, s.transforms, value, s.required)


def required(src: SourceLike) -> Source:
    """The target must get a value: without one the result lists it in ``missing``."""
    s = source(src)
    return Source(s.path, s.transforms, s.default, True)


@dataclass(frozen=True, slots=True)
class Rule:
    source: Source
    target: str


def rules_of(direct: Iterable[tuple[SourceLike, str] | Rule]) -> list[Rule]:
    """Rules of a ``direct``-style list of (source, target) pairs."""
    rules = []
    for item in direct:
        if isinstance(item, Rule):
            rules.append(item)
            continue
        try:
            src, target = item
        except (TypeError, ValueError):
            raise MappingError(f"a mapping rule is a (source, target) pair, not {item!r}") from None
        if not isinstance(target, str) or not target:
            raise MappingError(f"the target of {item!r} is not a field name")
        rules.append(Rule(source(src), target))
    return rules


# ---------------------------------------------------------------------------- paths


def parse_path(path: str) -> tuple[str, ...]:
    """The keys of a dotted path (``properties.name``) or a JSON pointer (``/properties/name``,
    RFC 6901: ``~1`` is ``/``, ``~0`` is ``~``). A list is indexed by a key of digits."""
    if not isinstance(path, str) or not path.strip():
        raise MappingError("a source path must not be empty")
    path = path.strip()
    if path.startswith("/"):
        return tuple(key.replace("~1", "/").replace("~0", "~") for key in path[1:].split("/"))
    keys = tuple(path.split("."))
    if any(not key for key in keys):
        raise MappingError(f"the dotted path {path!r} has an empty key")
    return keys


def read_path(document: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` in ``document``, or ``MISSING``."""
    value = document
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
    return value


# ---------------------------------------------------------------------------- transforms
# Each takes a value that is not empty and returns the new value; ValueError says why not.


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, dict, list)):
        raise ValueError(f"expected text, got {value!r}")
    return str(value)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _upper(value: Any) -> str:
    return _text(value).upper()


def _lower(value: Any) -> str:
    return _text(value).lower()


def _title(value: Any) -> str:
    return _text(value).title()


def _epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        return None
    try:
        return datetime.fromtimestamp(number / 1000, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{value!r} is not a time in epoch milliseconds") from None


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    moment = _epoch_ms(value)
    if moment is not None:
        return moment
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date or epoch milliseconds") from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date") from None
    # a date-time is the UTC day: HubSpot's close dates are midnight UTC
    return _datetime(value).date()


def _money(value: Any, digits: int = 2) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"{value!r} is not an amount")
    try:
        number = Decimal(value.strip().replace(" ", "") if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    return float(number.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a yes or no")


def _url(value: Any) -> str:
    text = _text(value).strip()
    return text if "://" in text else f"https://{text}"


def lookup_key(value: Any) -> str:
    """How a value map compares values: text, without surrounding space, case folded."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().casefold()


_SIMPLE = {
    "strip": _strip, "upper": _upper, "lower": _lower, "title": _title, "date": _date,
    "datetime": _datetime, "boolean": _boolean, "url": _url,
}


def _step(name: str, argument: Any, value_maps: Mapping[str, Mapping]) -> Callable[[Any], Any]:
    """The function of one transform, its argument bound."""
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name == "money":
        digits = 2 if argument is None else int(argument)
        return lambda value: _money(value, digits)
    if name == "convert":
        if not callable(argument):
            raise MappingError(f"convert needs a function, not {argument!r}")
        return argument
    if name == "lookup":
        if argument not in value_maps:
            raise MappingError(f"value map {argument!r} is unknown")
        table = {lookup_key(k): v for k, v in value_maps[argument].items()}

        def _lookup(value: Any) -> Any:
            try:
                return table[lookup_key(value)]
            except KeyError:
                raise Unmatched(argument, value) from None

        return _lookup
    raise MappingError(f"transform {name!r} is unknown (known: {', '.join(TRANSFORMS)})")


# ---------------------------------------------------------------------------- apply


@dataclass(slots=True)
class MapResult:
    """What a mapping made of one payload."""

    values: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # target -> why its value could not be read
    missing: list = field(default_factory=list)  # required targets that got no value
    dropped: list = field(default_factory=list)  # targets a caller refused (fields the source does not own)
    unmatched: dict = field(default_factory=dict)  # target -> (value map, value) it had no entry for

    @property
    def ok(self) -> bool:
        return not self.errors and not self.missing

    @property
    def failed(self) -> list[str]:
        """The targets that failed: an error or a required value missing."""
        return [*self.errors, *self.missing]

    def problems(self) -> list[str]:
        """One sentence per failed target, for people."""
        return [*(f"{target}: {message}" for target, message in self.errors.items()),
                *(f"{target}: required, and the payload has no value" for target in self.missing)]


class CompiledMapping:
    """Rules ready to apply: paths split, transforms bound. Apply it to many payloads."""

    __slots__ = ("_rules", "empty", "rules", "targets")

    def __init__(self, rules: list[Rule], value_maps: Mapping[str, Mapping] | None = None, empty: Any = None):
        value_maps = value_maps or {}
        self.rules = tuple(rules)
        self.empty = empty
        compiled, seen = [], set()
        for rule in self.rules:
            if rule.target in seen:
                raise MappingError(f"target {rule.target!r} is mapped twice")
            seen.add(rule.target)
            src = rule.source
            steps = tuple(_step(name, argument, value_maps) for name, argument in src.transforms)
            compiled.append((rule.target, parse_path(src.path), steps, src.default, src.required, src.path))
        self._rules = tuple(compiled)
        self.targets = tuple(rule.target for rule in self.rules)

    def apply(self, payload: Any, partial: bool = False) -> MapResult:
        """The values of ``payload``; with ``partial``, only the rules whose path it has."""
        values, errors, missing, unmatched = {}, {}, [], {}
        empty = self.empty
        for target, keys, steps, fallback, is_required, path in self._rules:
            value = read_path(payload, keys)
            if value is MISSING and partial:
                continue
            if value is MISSING or value is None or value == "":
                value = None if fallback is MISSING else fallback
            try:
                for step in steps:
                    if value is None:
                        break
                    value = step(value)
                    if value == "":
                        value = None
            except (ValueError, TypeError, ArithmeticError) as exc:
                errors[target] = f"{path}: {exc}"
                if isinstance(exc, Unmatched):
                    unmatched[target] = (exc.value_map, exc.value)
                continue
            if value is None:
                if is_required:
                    missing.append(target)
                else:
                    values[target] = empty
            else:
                values[target] = value
        return MapResult(values, errors, missing, unmatched=unmatched)

    def sources_of(self, path: str) -> list[str]:
        """The targets fed by the source ``path`` (either spelling)."""
        keys = parse_path(path)
        return [target for target, rule_keys, *_rest in self._rules if rule_keys == keys]


def compile_mapping(direct: Iterable[tuple[SourceLike, str] | Rule], value_maps: Mapping[str, Mapping] | None = None,
                    empty: Any = None) -> CompiledMapping:
    """A compiled mapping of a ``direct`` list; ``value_maps`` by name; ``empty`` the value of
    a target without value (``None``, or ``False`` for Odoo)."""
    return CompiledMapping(rules_of(direct), value_maps, empty)


def changes(new: Mapping, old: Mapping, fields: Iterable[str] | None = None) -> dict:
    """{field: (old, new)} of the fields whose value ``new`` would change in ``old``.

    Floats are compared at 1e-9 (money is already rounded); ``None`` and ``False`` are both
    "no value", as Odoo reads an empty field as False.
    """
    changed = {}
    for name in new if fields is None else fields:
        if name not in new:
            continue
        after, before = new[name], old.get(name, MISSING)
        if _same(before, after):
            continue
        changed[name] = (None if before is MISSING else before, after)
    return changed


def _same(before: Any, after: Any) -> bool:
    if before is MISSING:
        return False
    if (before is None or before is False) and (after is None or after is False):
        return True
    numbers = (int, float)
    if (isinstance(before, numbers) and isinstance(after, numbers)
            and not isinstance(before, bool) and not isinstance(after, bool)):
        return math.isclose(before, after, rel_tol=0, abs_tol=1e-9)
    return type(before) is type(after) and before == after
