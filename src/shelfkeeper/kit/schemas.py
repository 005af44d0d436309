"""Base schemas shared by the domains."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    field_validator,
    model_validator,
)

NUL = "\x00"

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 date-time: pydantic alone would also take a number of seconds."""
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError("give an RFC 3339 date-time with a time zone")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""A point in time from a client: RFC 3339 text with a time zone, nothing else."""


def refuse_nul(value: object) -> None:
    """Raise ValueError when `value` holds text with a NUL character, at any depth.

    PostgreSQL can store NUL in neither `text` nor `jsonb`; refused here, it is a 422 on the
    field instead of a database error. Nested models check their own fields.
    """
    if isinstance(value, str):
        if NUL in value:
            raise ValueError("Text may not contain NUL (U+0000) characters.")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            refuse_nul(item)


class RequestModel(BaseModel):
    """A request body: unknown fields are refused (422), never silently dropped.

    Text anywhere in it may not contain NUL characters (422 on that field).
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: object) -> object:
        refuse_nul(value)
        return value


class PatchModel(RequestModel):
    """A partial update: only the fields sent are applied.

    Fields default to None to mean "not sent"; an explicit null is refused unless the field
    is listed in `nullable_fields` (where null clears the value).
    """

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_null(self) -> Self:
        for name in self.model_fields_set:
            if getattr(self, name) is None and name not in self.nullable_fields:
                raise ValueError(f"`{name}` may not be null")
        return self

    def changes(self) -> dict[str, object]:
        """The fields the client sent, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}
