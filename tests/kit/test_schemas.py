"""Base request schemas: unknown fields, explicit nulls and NUL characters are refused."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import Field, ValidationError

from shelfkeeper.kit.schemas import PatchModel, RequestModel


class Inner(RequestModel):
    label: str


class Outer(RequestModel):
    name: str
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    inner: Inner | None = None


class Update(PatchModel):
    name: str | None = None
    note: str | None = None

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"note"})


def locations(error: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(detail["loc"]) for detail in error.errors()]


def test_a_valid_body_passes() -> None:
    model = Outer.model_validate(
        {"name": "ok", "tags": ["a"], "attributes": {"k": "v"}, "inner": {"label": "x"}}
    )

    assert model.inner == Inner(label="x")


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate({"name": "ok", "colour": "red"})

    assert locations(raised.value) == [("colour",)]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"name": "a\x00b"}, ("name",)),
        ({"name": "ok", "tags": ["fine", "\x00"]}, ("tags",)),
        ({"name": "ok", "attributes": {"k": "v\x00"}}, ("attributes",)),
        ({"name": "ok", "attributes": {"k\x00": "v"}}, ("attributes",)),
        ({"name": "ok", "inner": {"label": "\x00"}}, ("inner", "label")),
    ],
)
def test_text_with_a_nul_character_is_refused_where_it_is(
    body: dict[str, object], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate(body)

    assert locations(raised.value) == [location]
    assert "NUL" in raised.value.errors()[0]["msg"]


def test_a_patch_knows_which_fields_were_sent() -> None:
    assert Update.model_validate({"note": None}).changes() == {"note": None}
    assert Update.model_validate({"name": "x"}).changes() == {"name": "x"}
    assert Update.model_validate({}).changes() == {}


def test_a_patch_refuses_null_for_a_field_that_cannot_be_cleared() -> None:
    with pytest.raises(ValidationError) as raised:
        Update.model_validate({"name": None})

    assert "`name` may not be null" in raised.value.errors()[0]["msg"]
