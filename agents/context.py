"""What every node receives besides the state: LangGraph's runtime context.

Built once per run by the interface that starts the incident (CLI, webhook
worker, Slack app, eval runner) and passed as `context=` to the graph; nodes
read it as `runtime.context`. Nothing in it is checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memory.base import MemoryStore
from policies.limits import PolicyLimits
from settings import Settings
from tools.clock import ClusterClock
from tools.registry import Toolbox

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel


@dataclass
class AgentContext:
    """The run's dependencies, passed to every node."""

    settings: Settings
    #: Read tools over the cluster, metrics and traces.
    toolbox: Toolbox
    #: The cluster's time: wall time, or the twin's simulated clock in eval mode.
    clock: ClusterClock
    memory: MemoryStore
    limits: PolicyLimits
    #: None: the deterministic mode.
    chat_model: BaseChatModel | None = None
    #: Progress sink (rich console, Slack thread): receives (node, message).
    progress: Callable[[str, str], None] | None = None
    #: Free-form extras an interface passes to its own nodes (e.g. the twin's recovery oracle
    #: is never here: agents must not see a scenario's truth).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def model_enabled(self) -> bool:
        return self.chat_model is not None

    def say(self, node: str, message: str) -> None:
        if self.progress is not None:
            self.progress(node, message)
