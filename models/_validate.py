"""Shape validation shared by the model families: one clear message naming the config field."""

from __future__ import annotations

__all__ = ["check_positive_int"]


def check_positive_int(value: object, field: str, example: str) -> None:
    """Raise ValueError unless `value` is an int >= 1 (not a bool); `field` is the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field}={value!r} must be a positive integer; set e.g. {example}")
