"""SES's simple template substitution: ``{{name}}`` replaced by the recipient's value."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["PLACEHOLDER", "render"]

PLACEHOLDER = re.compile(r"{{\s*([^{}]+?)\s*}}")


def render(template: str, data: Mapping[str, str]) -> str:
    """Fill every ``{{name}}``; a name without a value becomes empty, as in SES."""
    return PLACEHOLDER.sub(lambda m: data.get(m.group(1), ""), template)
