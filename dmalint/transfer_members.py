"""Buffers a driver hands to the core through a transfer descriptor's members.

`struct spi_transfer t = { .tx_buf = &st->cmd, .rx_buf = st->rx };` DMAs both buffers when the
message is submitted, though no DMA call names them.  The contracts list such members
(`[[buffer_member]]` in rules/api-transfer.toml); this pass finds the buffers stored into them,
in designated initialisers and in plain assignments, and logs them like the buffers a transfer
call is given: the cache-line rule (DMA024) then knows they are DMA'd, which also tells it that
two such buffers side by side (a transfer's tx and rx) share their lines on purpose.
"""

from __future__ import annotations

from tree_sitter import Node

from dmalint.contracts.model import BufferMember, Contracts
from dmalint.engine.fieldlog import Embedded, embedded_target
from dmalint.engine.state import Step
from dmalint.parse import FunctionDef, text
from dmalint.structs import type_name


def member_buffers(fn: FunctionDef, contracts: Contracts, types: dict[str, str],
                   canonical=lambda name: name) -> list[Embedded]:
    """The buffers fn stores into the contracts' buffer members, with the struct and member
    chain they live in (only those whose container's type is known)."""
    members = contracts.buffer_members
    if not members:
        return []
    to_device = contracts.constants.get("DMA_TO_DEVICE")
    out: list[Embedded] = []
    stack = [fn.body]
    while stack:
        n = stack.pop()
        stack.extend(n.named_children)
        found = _initialiser(n, members, canonical) if n.type == "initializer_pair" else \
            _assignment(n, members, types, canonical) if n.type == "assignment_expression" else None
        if found is None:
            continue
        bm, value = found
        target = embedded_target(value, types)
        if target is None:
            continue
        line, col = value.start_point[0] + 1, value.start_point[1] + 1
        how = f"{bm.struct}.{bm.member}"
        out.append(Embedded(target[0], target[1], to_device if bm.device_reads else None, how,
                            " ".join(text(value).split()), line, col, fn.name,
                            (Step(fn.node.start_point[0] + 1, "enter", f"enter {fn.name}()"),
                             Step(line, "transfer", f"stored in {how}, which the core DMAs"))))
    return out


def _initialiser(pair: Node, members, canonical) -> tuple[BufferMember, Node] | None:
    """`.rx_buf = value` inside the initialiser of a declared or literal `struct spi_transfer`."""
    designator = pair.child_by_field_name("designator")
    value = pair.child_by_field_name("value")
    if designator is None or value is None or designator.type != "field_designator":
        return None
    bm = members.get(text(designator).lstrip(".").strip())
    if bm is None:
        return None
    owner = pair.parent
    while owner is not None and owner.type in ("initializer_list", "init_declarator", "initializer_pair"):
        owner = owner.parent
    if owner is None or owner.type not in ("declaration", "compound_literal_expression"):
        return None
    type_node = owner.child_by_field_name("type")
    if type_node is not None and type_node.type == "type_descriptor":  # (struct spi_transfer){...}
        type_node = type_node.child_by_field_name("type")
    held = type_name(type_node)
    return (bm, value) if held is not None and canonical(held) == bm.struct else None


def _assignment(node: Node, members, types, canonical) -> tuple[BufferMember, Node] | None:
    """`t.rx_buf = value`, `xfer[1].tx_buf = value`, `t->tx_buf = value` with t's type known."""
    left, value = node.child_by_field_name("left"), node.child_by_field_name("right")
    if left is None or value is None or left.type != "field_expression" or \
            text(node.child_by_field_name("operator")) != "=":
        return None
    bm = members.get(text(left.child_by_field_name("field")))
    if bm is None:
        return None
    base = left.child_by_field_name("argument")
    while base is not None and base.type == "subscript_expression":
        base = base.child_by_field_name("argument")
    if base is None or base.type != "identifier" or text(base) not in types:
        return None
    return (bm, value) if canonical(types[text(base)]) == bm.struct else None
