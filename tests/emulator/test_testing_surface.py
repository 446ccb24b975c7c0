"""The public surface of ``pulsora_revenue.testing``: documented, and no private types."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator

import attrs

import pulsora_revenue
from pulsora_revenue import testing, webhooks


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(testing).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("pulsora_revenue")
    }
    assert testing.__all__ == sorted(testing.__all__)
    assert public == set(testing.__all__)


def test_every_public_name_has_a_docstring() -> None:
    for name, member in public_members():
        assert inspect.getdoc(member), name


def test_no_public_signature_names_a_private_type() -> None:
    exported = {
        value
        for module in (pulsora_revenue, testing, webhooks)
        for value in map(module.__dict__.get, module.__all__)
        if isinstance(value, type)
    }
    for name, member in public_members():
        for kind in types_in(hints_of(member)):
            if kind.__module__.startswith("pulsora_revenue"):
                assert kind in exported, f"{name} names {kind.__module__}.{kind.__qualname__}"


def test_no_public_attribute_holds_a_private_type() -> None:
    fake = testing.FakePulsora()
    for attribute, value in vars(fake).items():
        if not attribute.startswith("_"):
            assert not type(value).__module__.startswith("pulsora_revenue"), attribute


def public_members() -> Iterator[tuple[str, object]]:
    """Each name of ``__all__``, and each public method and property of its classes."""
    for name in testing.__all__:
        value = getattr(testing, name)
        yield name, value
        if isinstance(value, type):
            for attribute, member in vars(value).items():
                if not attribute.startswith("_") and callable_or_property(member):
                    yield f"{name}.{attribute}", member


def callable_or_property(member: object) -> bool:
    return isinstance(member, property | classmethod | staticmethod | types.FunctionType)


def hints_of(member: object) -> dict[str, object]:
    """The resolved annotations of a function, a property, or a class and its ``__init__``."""
    if isinstance(member, property):
        return hints_of(member.fget)
    if isinstance(member, classmethod | staticmethod):
        return hints_of(member.__func__)
    if isinstance(member, type):
        if attrs.has(member):  # attrs' generated __init__ is typed by the fields
            fields = {f.name for f in attrs.fields(member) if not f.name.startswith("_")}
            return {k: v for k, v in typing.get_type_hints(member).items() if k in fields}
        return hints_of(vars(member)["__init__"])  # each exported class defines its own
    assert callable(member)
    return typing.get_type_hints(typing.cast(Callable[..., object], member))


def types_in(hints: dict[str, object]) -> Iterator[type]:
    """Every class named in *hints*, inside unions and generics too."""
    pending = list(hints.values())
    while pending:
        hint = pending.pop()
        pending.extend(typing.get_args(hint))
        origin = typing.get_origin(hint)
        if isinstance(origin, type):
            yield origin
        elif isinstance(hint, type):
            yield hint
