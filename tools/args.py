"""Argument types shared by the tools: Kubernetes' own name rules, as pydantic types.

A model that asks for pod "Frontend_1" gets a validation error naming the
rule it broke, before any request is sent (apimachinery's
pkg/util/validation: IsDNS1123Label, IsDNS1123Subdomain, IsDNS1035Label).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from state import (
    ContainerName,
    Name,
    Namespace,
    ServiceName,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
)

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "ContainerName",
    "Limit",
    "Name",
    "Namespace",
    "Selector",
    "ServiceName",
    "ToolArgs",
    "dns1035_label",
    "dns1123_label",
    "dns1123_subdomain",
    "selector",
]

# Label and field selectors: the characters their grammars allow, nothing that could smuggle
# another query parameter.
_SELECTOR = re.compile(r"^[A-Za-z0-9_./\-=!,()\s]*$")


def selector(value: str) -> str:
    if len(value) > 1024:
        raise ValueError("selector is longer than 1024 characters")
    if not _SELECTOR.match(value):
        raise ValueError(f"{value!r} is not a label or field selector (e.g. 'app=cart,tier!=db')")
    return value


Selector = Annotated[str, AfterValidator(selector)]


class ToolArgs(BaseModel):
    """Base for argument models: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: Items a list tool returns at most, unless asked for fewer.
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 500

Limit = Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)]
