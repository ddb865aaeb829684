"""Finding rule classes by type name: built-ins, entry points and ``module:Class``.

Built-ins register with the ``@predicate``/``@priority`` decorators. Installed packages
expose rules through the ``extender.rules`` entry-point group. A policy may also name a
class directly as ``package.module:ClassName`` (handy for a rule living next to the policy).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Literal, TypeVar

from extender.sdk.rules import Predicate, Priority, Rule

ENTRY_POINT_GROUP = "extender.rules"

Kind = Literal["predicate", "priority"]
_BASES: dict[Kind, type[Rule]] = {"predicate": Predicate, "priority": Priority}
_REGISTRY: dict[Kind, dict[str, type[Rule]]] = {"predicate": {}, "priority": {}}

P = TypeVar("P", bound=type[Predicate])
S = TypeVar("S", bound=type[Priority])


class UnknownRuleError(LookupError):
    """A policy names a rule type that cannot be found or is not of the right kind."""


def predicate(type_name: str) -> Callable[[P], P]:
    """Class decorator registering a :class:`Predicate` under ``type_name``."""

    def register(cls: P) -> P:
        _register("predicate", type_name, cls)
        return cls

    return register


def priority(type_name: str) -> Callable[[S], S]:
    """Class decorator registering a :class:`Priority` under ``type_name``."""

    def register(cls: S) -> S:
        _register("priority", type_name, cls)
        return cls

    return register


def _register(kind: Kind, type_name: str, cls: type[Rule]) -> None:
    if not issubclass(cls, _BASES[kind]):
        raise TypeError(f"{cls.__qualname__} must subclass {_BASES[kind].__name__} to be a {kind}")
    existing = _REGISTRY[kind].get(type_name)
    if existing is not None and existing is not cls:
        raise ValueError(f"{kind} type {type_name!r} is already registered by {existing.__qualname__}")
    cls.type_name = type_name
    _REGISTRY[kind][type_name] = cls


def known_types(kind: Kind) -> list[str]:
    """Registered and entry-point type names of this kind, sorted."""
    names = set(_REGISTRY[kind])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken third-party package must not hide the built-ins
            continue
        if isinstance(cls, type) and issubclass(cls, _BASES[kind]):
            names.add(ep.name)
    return sorted(names)


def resolve(kind: Kind, type_ref: str) -> type[Rule]:
    """Return the class a policy's ``type`` refers to, or raise :class:`UnknownRuleError`."""
    base = _BASES[kind]
    if ":" in type_ref:
        cls = _import_reference(type_ref)
    elif type_ref in _REGISTRY[kind]:
        return _REGISTRY[kind][type_ref]
    else:
        cls = _from_entry_point(kind, type_ref)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        other: Kind = "priority" if kind == "predicate" else "predicate"
        if isinstance(cls, type) and issubclass(cls, _BASES[other]):
            raise UnknownRuleError(f"{type_ref!r} is a {other}, not a {kind}")
        raise UnknownRuleError(f"{type_ref!r} is not a {base.__name__} subclass")
    if not cls.type_name:
        cls.type_name = type_ref
    return cls


def _import_reference(type_ref: str) -> object:
    module_name, _, attr = type_ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownRuleError(f"cannot import module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UnknownRuleError(f"module {module_name!r} has no attribute {attr!r}") from None


def _from_entry_point(kind: Kind, type_ref: str) -> object:
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=type_ref):
        try:
            return ep.load()
        except Exception as exc:
            raise UnknownRuleError(f"entry point {type_ref!r} ({ep.value}) failed to load: {exc}") from exc
    other: Kind = "priority" if kind == "predicate" else "predicate"
    if type_ref in _REGISTRY[other]:
        raise UnknownRuleError(f"{type_ref!r} is a {other}, not a {kind}")
    known = ", ".join(known_types(kind)) or "none"
    raise UnknownRuleError(f"unknown {kind} type {type_ref!r} (known: {known})")
