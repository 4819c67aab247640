"""kubemedic's typed tools: how it sees a cluster (read tools) and how it may change one (actions).

Importing this package registers every read tool in `tools.registry.REGISTRY`.
"""

from tools import events, logs, objects, rollout, servicegraph, signals, usage, workloads
from tools.connection import ClusterConnection, Clusters, connect
from tools.registry import REGISTRY, Answer, ReadTool, Toolbox
from tools.result import ToolResult, Truncation

__all__ = [
    "REGISTRY",
    "Answer",
    "ClusterConnection",
    "Clusters",
    "ReadTool",
    "ToolResult",
    "Toolbox",
    "Truncation",
    "connect",
    "events",
    "logs",
    "objects",
    "rollout",
    "servicegraph",
    "signals",
    "usage",
    "workloads",
]
