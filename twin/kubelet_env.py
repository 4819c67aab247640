"""A container's environment, resolved as the kubelet builds it before creating the container.

`envFrom` first, then `env` (later entries win), with ConfigMap and Secret
references read from the store at that moment. A missing object or key that
is not optional fails the start with the kubelet's own message, which becomes
the container's CreateContainerConfigError; the kubelet retries, so fixing
the ConfigMap lets the container start. Also here: which port the process
listens on, and the placeholders behaviour profiles use in their log lines.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twin.behavior import BehaviorProfile
from twin.logfmt import format_line
from twin.quantity import parse_quantity

if TYPE_CHECKING:
    from twin.cluster import Cluster

Obj = dict[str, Any]


class ConfigError(Exception):
    """A reference the kubelet cannot resolve: CreateContainerConfigError."""


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand `$(VAR)` from variables defined earlier; `$$` escapes; unknown refs stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(sub, value)


def _secret_values(secret: Obj) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(raw), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            out[key] = str(raw)
    for key, raw in (secret.get("stringData") or {}).items():
        out[key] = str(raw)
    return out


def _field_value(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    value = simple.get(path)
    return "" if value is None else str(value)


def _resource_value(container: Obj, ref: Obj) -> str:
    resource = str(ref.get("resource", ""))
    section, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(section) or {}).get(name)
    if raw is None and section == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor") or "1") or 1.0
    value = parse_quantity(raw) / divisor
    # The kubelet rounds up (cpu: 250m with divisor 1 gives "1").
    whole = int(value)
    return str(whole if whole == value else whole + 1)


def resolve_env(cluster: Cluster, pod: Obj, container: Obj) -> dict[str, str]:
    """The container's environment; raises ConfigError as the kubelet would fail the start."""
    store = cluster.store
    namespace = pod["metadata"].get("namespace", "default")
    cm_rt = cluster.rt("ConfigMap")
    secret_rt = cluster.rt("Secret")
    env: dict[str, str] = {}

    def config_map(name: str, optional: bool) -> dict[str, str] | None:
        obj = store.find(cm_rt, namespace, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'configmap "{name}" not found')
        return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}

    def secret(name: str, optional: bool) -> dict[str, str] | None:
        obj = store.find(secret_rt, namespace, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'secret "{name}" not found')
        return _secret_values(obj)

    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if "configMapRef" in source:
            ref = source["configMapRef"] or {}
            data = config_map(str(ref.get("name", "")), bool(ref.get("optional")))
        elif "secretRef" in source:
            ref = source["secretRef"] or {}
            data = secret(str(ref.get("name", "")), bool(ref.get("optional")))
        else:
            continue
        for key, value in (data or {}).items():
            env[prefix + key] = value

    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        source = var.get("valueFrom")
        if not source:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"] or {}
            cm_name, key = str(ref.get("name", "")), str(ref.get("key", ""))
            optional = bool(ref.get("optional"))
            cm_data = config_map(cm_name, optional)
            if cm_data is None:
                continue
            if key not in cm_data:
                if optional:
                    continue
                raise ConfigError(f"couldn't find key {key} in ConfigMap {namespace}/{cm_name}")
            env[name] = cm_data[key]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"] or {}
            s_name, key = str(ref.get("name", "")), str(ref.get("key", ""))
            optional = bool(ref.get("optional"))
            s_data = secret(s_name, optional)
            if s_data is None:
                continue
            if key not in s_data:
                if optional:
                    continue
                raise ConfigError(f"couldn't find key {key} in Secret {namespace}/{s_name}")
            env[name] = s_data[key]
        elif "fieldRef" in source:
            env[name] = _field_value(pod, str((source["fieldRef"] or {}).get("fieldPath", "")))
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"] or {})
    return env


def declared_port(container: Obj, name: str) -> int | None:
    """The containerPort a named port refers to, or None."""
    for port in container.get("ports") or []:
        if port.get("name") == name:
            return int(port.get("containerPort", 0))
    return None


def listen_port(container: Obj, env: Mapping[str, str], profile: BehaviorProfile) -> int:
    """The port the process listens on: first containerPort, else $PORT, else the profile's."""
    ports = container.get("ports") or []
    if ports and ports[0].get("containerPort"):
        return int(ports[0]["containerPort"])
    raw = env.get("PORT", "")
    if raw.isdigit():
        return int(raw)
    return profile.port


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def render(template: str, values: Mapping[str, object], env: Mapping[str, str]) -> str:
    """Fill `{name}` from `values` and `{env:NAME}` from the environment.

    `{{` and `}}` are literal braces, as in str.format; unknown placeholders stay as written.
    """

    def sub(m: re.Match[str]) -> str:
        text = m.group(0)
        if text in ("{{", "}}"):
            return text[0]
        name, arg = m.group(1), m.group(2)
        if name == "env" and arg is not None:
            return env.get(arg, "")
        if arg is None and name in values:
            return str(values[name])
        return text

    return _PLACEHOLDER.sub(sub, template)


def _records(template: str) -> list[Obj | str]:
    """A template's records: JSON object or list (see twin/behavior.py), else the text itself."""
    text = template.lstrip()
    if text[:1] in ("{", "[") and text[1:2] in ('"', "{", "[", "]", " ", "\n"):
        try:
            data = json.loads(text)
        except ValueError:
            return [template]
        items = data if isinstance(data, list) else [data]
        if all(
            isinstance(i, str) or (isinstance(i, dict) and isinstance(i.get("message"), str))
            for i in items
        ):
            return list(items)
    return [template]


def log_lines(
    profile: BehaviorProfile,
    template: str,
    severity: str,
    ts: datetime,
    values: Mapping[str, object],
    env: Mapping[str, str],
    *,
    hostname: str,
) -> list[str]:
    """The lines one use of a profile's log template prints, in the profile's log style."""
    out: list[str] = []
    for item in _records(template):
        if isinstance(item, str):
            message = render(item, values, env)
            out.append(
                format_line(
                    profile.log_style,
                    severity,
                    message,
                    ts,
                    logger=profile.logger,
                    hostname=hostname,
                )
            )
            continue
        message = render(str(item["message"]), values, env)
        if item.get("raw"):
            out.append(message)
            continue
        fields = {
            k: render(v, values, env) if isinstance(v, str) else v
            for k, v in item.items()
            if k not in ("message", "severity", "logger", "raw")
        }
        logger = item.get("logger")
        out.append(
            format_line(
                profile.log_style,
                str(item.get("severity") or severity),
                message,
                ts,
                logger=str(logger) if logger is not None else profile.logger,
                hostname=hostname,
                fields=fields,
            )
        )
    return out
