"""A kubeconfig for the twin's API server, so kubectl and the official client can reach it.

The twin serves plain HTTP on loopback with no authentication: the file
names the server, an empty user and a context with a default namespace,
which is all `kubectl --kubeconfig` and `kubernetes.config.load_kube_config`
need.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

DEFAULT_CONTEXT = "kubemedic-twin"


def kubeconfig_dict(
    server_url: str, *, context: str = DEFAULT_CONTEXT, namespace: str = "default"
) -> dict[str, object]:
    """The kubeconfig document for a server at `server_url`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": {}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
    }


def write_kubeconfig(
    path: str | os.PathLike[str],
    server_url: str,
    *,
    context: str = DEFAULT_CONTEXT,
    namespace: str = "default",
) -> Path:
    """Write a kubeconfig for the twin at `path` (mode 0600, as kubectl writes its own)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(
        kubeconfig_dict(server_url, context=context, namespace=namespace), sort_keys=False
    )
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(target, 0o600)
    return target
