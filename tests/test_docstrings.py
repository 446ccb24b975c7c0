"""Every public name has a docstring, in one style: what it does, then Args, Returns, Raises.

The API reference (docs/reference) is generated from these docstrings, in the Google
style that mkdocstrings reads: a summary line, then ``Args:`` naming every parameter a
caller passes, ``Returns:`` for what a function gives back (``Yields:`` for a
generator), and ``Raises:`` where it raises on purpose.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

#: The public modules, each with its ``__all__``.
MODULES = (
    "pulsora_revenue",
    "pulsora_revenue.webhooks",
    "pulsora_revenue.webhooks.stripe",
    "pulsora_revenue.webhooks.paddle",
    "pulsora_revenue.webhooks.lemonsqueezy",
    "pulsora_revenue.webhooks.polar",
    "pulsora_revenue.webhooks.chargebee",
    "pulsora_revenue.testing",
    "pulsora_revenue.starlette",
    "pulsora_revenue.otel",
)


def public(module: ModuleType) -> Iterator[tuple[str, Any]]:
    for name in getattr(module, "__all__", ()):
        yield f"{module.__name__}.{name}", getattr(module, name)


def callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function, and every public method of a public class (its own)."""
    seen: set[int] = set()
    for module_name in MODULES:
        for name, value in public(importlib.import_module(module_name)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if inspect.isfunction(value):
                yield name, value
            elif inspect.isclass(value) and not issubclass(value, BaseException):
                own_init = "__init__" in vars(value) and not getattr(value, "_is_protocol", False)
                if own_init and not hasattr(value, "__attrs_attrs__"):
                    yield name, value  # its constructor's arguments, in the class's docstring
                for member, attribute in vars(value).items():
                    function = (
                        attribute.__func__ if isinstance(attribute, classmethod) else attribute
                    )
                    if not member.startswith("_") and inspect.isfunction(function):
                        yield f"{name}.{member}", function


def documented() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        yield module_name, module
        for name, value in public(module):
            if id(value) not in seen and (inspect.isclass(value) or inspect.isfunction(value)):
                seen.add(id(value))
                yield name, value


@pytest.mark.parametrize(("name", "value"), list(documented()), ids=lambda v: str(v)[:60])
def test_every_public_name_has_a_docstring(name: str, value: Any) -> None:
    doc = inspect.getdoc(value)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.endswith((".", ":")), f"{name}: the summary line is a sentence: {summary!r}"


def parameters(function: Callable[..., Any]) -> list[str]:
    names = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in ("self", "cls"):
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            names.append(f"*{parameter.name}")
        elif parameter.kind is parameter.VAR_KEYWORD:
            names.append(f"**{parameter.name}")
        else:
            names.append(parameter.name)
    return names


def section(doc: str, title: str) -> str:
    """The text of section *title* of a Google-style docstring, or "" without one."""
    lines = doc.splitlines()
    if f"{title}:" not in lines:
        return ""
    start = lines.index(f"{title}:") + 1
    body = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        body.append(line)
    return "\n".join(body)


CALLABLES = list(callables())


@pytest.mark.parametrize(("name", "function"), CALLABLES, ids=[name for name, _ in CALLABLES])
def test_every_public_callable_says_its_arguments_and_what_it_returns(
    name: str, function: Callable[..., Any]
) -> None:
    doc = inspect.getdoc(function) or ""
    args = section(doc, "Args")
    if inspect.isclass(function):
        for parameter in parameters(function.__init__):
            assert f"    {parameter}:" in args, f"{name}: Args: does not describe {parameter!r}"
        return
    for parameter in parameters(function):
        assert f"    {parameter}:" in args or f"    {parameter} (" in args, (
            f"{name}: Args: does not describe {parameter!r}"
        )
    returns = inspect.signature(function).return_annotation
    gives = returns not in (None, "None", inspect.Signature.empty)
    if gives and not inspect.isgeneratorfunction(function) and "Iterator" not in str(returns):
        assert section(doc, "Returns"), f"{name}: no Returns: section"


def test_the_checker_finds_what_is_missing() -> None:
    def undocumented(amount: int, *, currency: str) -> int:
        """Do a thing.

        Args:
            amount: how much.
        """
        return amount

    doc = inspect.getdoc(undocumented) or ""
    assert parameters(undocumented) == ["amount", "currency"]
    assert "    amount:" in section(doc, "Args")
    assert "    currency:" not in section(doc, "Args")
    assert section(doc, "Returns") == ""
