"""One finding of an audit (``rcyc doctor --security``): the bucket and function checks (``audit``) and each
trigger's own (``triggers``) make them, so it lives below both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    severity: str  # high | medium | ok | not applicable
    check: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return self.__dict__.copy()
