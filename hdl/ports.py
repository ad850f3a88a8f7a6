"""Pass ports of an outer component through to the inner components that own them."""

from amaranth.lib.wiring import In

__all__ = ["pass_through"]


def pass_through(m, outer, owner_of, names=None):
    """Drive every port of ``outer``'s signature from (or onto) the member that owns it.

    ``owner_of(name)`` gives ``(component, member name)`` for each top-level member ``name`` of
    ``outer`` (of ``names`` only, when given); interface members (streams) are followed field by
    field, inputs flowing in and outputs flowing out.
    """
    for path, member in outer.signature.members.flatten():
        if not member.is_port or (names is not None and path[0] not in names):
            continue
        owner, name = owner_of(path[0])
        o, i = getattr(outer, path[0]), getattr(owner, name)
        for part in path[1:]:
            o, i = getattr(o, part), getattr(i, part)
        if member.flow == In:
            m.d.comb += i.eq(o)
        else:
            m.d.comb += o.eq(i)
