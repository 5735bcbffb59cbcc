"""Denials, and typed reads of the create body: a value of the wrong type is a 400 naming its field (pure).

The engine decodes the body into Go types and would refuse such a value anyway; refusing it here
keeps the policy's checks from guessing what an odd value means (and from failing with a 500).
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import ApiError, Kind, validation_error

T = TypeVar("T")

_KINDS: dict[type, str] = {str: "a string", bool: "true or false", int: "an integer", list: "a list", dict: "an object"}


def denied(field: str, rule: str, why: str) -> ApiError:
    return ApiError(
        Kind.FORBIDDEN, "policy_denied", f"{field}: {why} (policy rule {rule})", details={"field": field, "rule": rule}
    )


def typed(value: Any, kind: type[T], field: str) -> T | None:
    """``value`` when it is of ``kind`` (None stays None, as the engine reads null as unset)."""
    if value is None:
        return None
    wrong_bool = isinstance(value, bool) and kind is not bool  # True is an int to Python, not to the engine
    if not isinstance(value, kind) or wrong_bool:
        raise validation_error(field, f"must be {_KINDS[kind]}, got {type(value).__name__}")
    return value


def _strictly_text(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise validation_error(field, f"must be a string, got {type(value).__name__}")


class Fields:
    """One object of the body, read field by field."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def text(self, key: str) -> str | None:
        return typed(self.data.get(key), str, self.name(key))

    def flag(self, key: str) -> bool | None:
        return typed(self.data.get(key), bool, self.name(key))

    def number(self, key: str) -> int | None:
        return typed(self.data.get(key), int, self.name(key))

    def items(self, key: str) -> list[Any]:
        return typed(self.data.get(key), list, self.name(key)) or []

    def texts(self, key: str) -> list[str]:
        values = self.items(key)
        for index, value in enumerate(values):
            _strictly_text(value, f"{self.name(key)}[{index}]")
        return values

    def mapping(self, key: str) -> dict[str, Any]:
        return typed(self.data.get(key), dict, self.name(key)) or {}

    def child(self, key: str) -> Fields:
        return Fields(self.mapping(key), self.name(key))

    def objects(self, key: str) -> list[Fields]:
        """The list under ``key``, each item an object."""
        named = self.name(key)
        return [
            Fields(typed(item, dict, f"{named}[{index}]") or {}, f"{named}[{index}]")
            for index, item in enumerate(self.items(key))
        ]

    def objects_of_texts(self, key: str) -> list[list[str]]:
        """A list of lists of strings (the capabilities of a device request)."""
        named = self.name(key)
        lists = [typed(item, list, f"{named}[{index}]") or [] for index, item in enumerate(self.items(key))]
        for index, inner in enumerate(lists):
            for position, value in enumerate(inner):
                _strictly_text(value, f"{named}[{index}][{position}]")
        return lists

    def string_map(self, key: str) -> dict[str, str]:
        """An object of strings (labels, options, sysctls)."""
        values = self.mapping(key)
        for name, value in values.items():
            _strictly_text(value, f"{self.name(key)}.{name}")
        return values
