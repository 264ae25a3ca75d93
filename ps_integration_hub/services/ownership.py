"""Which system may write which field (the system of record): plain Python, no ORM.

An ownership rule names the owner of one field of one model: ``odoo`` or a connector's
system (``hubspot``, ``bamboohr``...). A field without a rule belongs to no one in
particular: every system and every user may write it.
"""

from collections.abc import Iterable, Mapping

ODOO = "odoo"

# x2many commands (odoo.fields.Command), spelled out to keep this module free of the ORM
CREATE, UPDATE, DELETE, UNLINK, LINK, CLEAR, SET = range(7)


def split_inbound(owners: Mapping[str, str], system: str, values: dict) -> tuple[dict, list[str]]:
    """(the values ``system`` may write, the names of the others) of ``values``.

    ``owners``: {field name: owner} of the model's rules. A system may write the fields it
    owns and those without a rule; a field Odoo or another system owns is dropped.
    """
    kept, dropped = {}, []
    for name, value in values.items():
        owner = owners.get(name)
        if owner is None or owner == system:
            kept[name] = value
        else:
            dropped.append(name)
    return kept, dropped


def x2many_ids_after(current: Iterable[int], commands) -> set[int] | None:
    """The ids an x2many holds once ``commands`` are applied to ``current``, or None when
    the commands create or change the linked records themselves (a change in any case)."""
    if commands is False or commands is None:
        return set()
    ids = set(current)
    for command in commands:
        if isinstance(command, int):
            ids.add(command)
            continue
        if isinstance(command, dict) or not isinstance(command, (list, tuple)) or not command:
            return None
        code = command[0]
        if code in (CREATE, UPDATE):
            return None
        if code in (DELETE, UNLINK):
            ids.discard(command[1])
        elif code == LINK:
            ids.add(command[1])
        elif code == CLEAR:
            ids.clear()
        elif code == SET:
            ids = set(command[2] or ())
        else:
            return None
    return ids

