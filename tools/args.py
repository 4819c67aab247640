"""Argument types shared by the tools: Kubernetes' own name rules, as pydantic types.

A model that asks for pod "Frontend_1" gets a validation error naming the
rule it broke, before any request is sent (apimachinery's
pkg/util/validation: IsDNS1123Label, IsDNS1123Subdomain, IsDNS1035Label).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Label and field selectors: the characters their grammars allow, nothing that could smuggle
# another query parameter.
_SELECTOR = re.compile(r"^[A-Za-z0-9_./\-=!,()\s]*$")


def dns1123_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"{value!r} is longer than 63 characters (a DNS-1123 label)")
    if not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def dns1123_subdomain(value: str) -> str:
    if len(value) > 253:
        raise ValueError(f"{value!r} is longer than 253 characters (a DNS-1123 subdomain)")
    if not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def dns1035_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"{value!r} is longer than 63 characters (a DNS-1035 label)")
    if not _DNS1035_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1035 label: lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def selector(value: str) -> str:
    if len(value) > 1024:
        raise ValueError("selector is longer than 1024 characters")
    if not _SELECTOR.match(value):
        raise ValueError(f"{value!r} is not a label or field selector (e.g. 'app=cart,tier!=db')")
    return value


#: A namespace name (DNS-1123 label).
Namespace = Annotated[str, AfterValidator(dns1123_label)]
#: An object name: Pods, Deployments, ConfigMaps, Nodes... (DNS-1123 subdomain).
Name = Annotated[str, AfterValidator(dns1123_subdomain)]
#: A Service name (DNS-1035 label).
ServiceName = Annotated[str, AfterValidator(dns1035_label)]
#: A container name (DNS-1123 label).
ContainerName = Annotated[str, AfterValidator(dns1123_label)]
Selector = Annotated[str, AfterValidator(selector)]


class ToolArgs(BaseModel):
    """Base for argument models: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: Items a list tool returns at most, unless asked for fewer.
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 500

Limit = Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)]
