"""Built-in applications the twin can run without any manifest of the scenario's own.

An app is a module with `APP` (its name), `ENTRY` (the Service its load
enters at), `manifests(namespace) -> list[dict]` (every object of its release
manifest, without the Namespace) and `register_behaviors(registry)` (a
behaviour profile per image it runs).
Scenarios name one with `spec.app`.
"""

from __future__ import annotations

from types import ModuleType

from twin.apps import shop

#: App name -> module.
BUILTIN: dict[str, ModuleType] = {shop.APP: shop}


def get_app(name: str) -> ModuleType:
    """The built-in app called `name`, or KeyError naming the ones that exist."""
    try:
        return BUILTIN[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN))
        raise KeyError(f"unknown app {name!r}; built-in apps: {known}") from None
