"""Parse Stripe's form encoding (`line_items[0][price_data][unit_amount]=8900`) into nested dicts and lists."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import StripeError

KEY_PART = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str]:
    """Split `a[b][0][]` into ["a", "b", "0", ""]; reject keys whose brackets do not nest cleanly."""
    head, bracket, rest = key.partition("[")
    if not head:
        raise invalid_key(key)
    parts = [head]
    if not bracket:
        return parts
    rest = "[" + rest
    position = 0
    for match in KEY_PART.finditer(rest):
        if match.start() != position:
            raise invalid_key(key)
        parts.append(match.group(1))
        position = match.end()
    if position != len(rest):
        raise invalid_key(key)
    return parts


def invalid_key(key: str) -> StripeError:
    return StripeError(400, f"Invalid parameter name: {key}", param=key)


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Build the nested structure Stripe's servers see; numeric or empty brackets become list indices."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = split_key(key)
        node = root
        for depth, part in enumerate(parts[:-1]):
            label = "[".join(parts[: depth + 1])
            if part == "" and depth > 0:
                part = str(next_index(node))
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise StripeError(400, f"Invalid hash: {label} was given both a value and nested keys", param=key)
            node = child
        last = parts[-1]
        if last == "" and len(parts) > 1:
            last = str(next_index(node))
        if isinstance(node.get(last), dict):
            raise StripeError(400, f"Invalid hash: {key} was given both a value and nested keys", param=key)
        node[last] = value
    return {key: listify(value) for key, value in root.items()}


def next_index(node: dict[str, Any]) -> int:
    return len(node)


def listify(value: Any) -> Any:
    """Turn dicts whose keys are all indices ("0", "1", ...) into lists, ordered by index."""
    if not isinstance(value, dict):
        return value
    converted = {key: listify(child) for key, child in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted
