"""One Settings object for kubemedic, grouped the way kopf groups OperatorSettings.

Loaded once at start (`load_settings`) and passed in; nothing else reads the
environment. Environment variables use the `KUBEMEDIC_` prefix and `__` between
group and field: `KUBEMEDIC_LLM__MODEL=gpt-4o-mini`, `KUBEMEDIC_REDIS__URL=redis://...`.
Tokens are SecretStr: they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["observe", "approve", "autonomous"]


class LLMSettings(BaseModel):
    """Any OpenAI-compatible endpoint; no model means the deterministic mode."""

    base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8000/v1")
    model: str = Field(default="", description="model name; empty = deterministic mode")
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=2048, gt=0)
    #: Tool calls one specialist may make per investigation.
    max_tool_calls: int = Field(default=8, ge=0, le=64)
    #: Retries of a structured answer that failed validation, before the deterministic fallback.
    max_repairs: int = Field(default=1, ge=0, le=5)
    structured_output_method: Literal["json_schema", "function_calling", "json_mode"] = (
        "json_schema"
    )
    #: Prices for the cost budget, in US dollars per million tokens.
    input_cost_per_mtok: float = Field(default=0.0, ge=0.0)
    output_cost_per_mtok: float = Field(default=0.0, ge=0.0)

    @property
    def enabled(self) -> bool:
        return bool(self.model)


class KubeSettings(BaseModel):
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    request_timeout_s: float = Field(default=10.0, gt=0)


class SourcesSettings(BaseModel):
    """Where metrics and traces come from; None means the cluster's own (the twin's)."""

    prometheus_url: str | None = None
    jaeger_url: str | None = None


class RedisSettings(BaseModel):
    """Incident memory. No URL: the in-process store (said aloud at start)."""

    url: SecretStr | None = None
    key_prefix: str = "kubemedic"
    retention_days: int = Field(default=90, ge=1)
    max_incidents: int = Field(default=10_000, ge=10)


class CheckpointSettings(BaseModel):
    """Graph checkpoints: Postgres when a DSN is set, else a SQLite file."""

    postgres_dsn: SecretStr | None = None
    sqlite_path: Path | None = None


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    channel: str | None = None
    #: Slack user ids (or user names) who may answer approval requests; empty: anyone who
    #: sees the request. The policy file's `approvers` applies on top of this.
    approvers: list[str] = Field(default_factory=list)


class PolicySettings(BaseModel):
    mode: Mode = "observe"
    #: A policy file that tightens or loosens the tunable limits (policies/default.yaml if None).
    file: Path | None = None
    #: The namespace kubemedic itself runs in: never written, like kube-system.
    own_namespace: str = "kubemedic"


class TelemetrySettings(BaseModel):
    enabled: bool = False
    otlp_endpoint: str | None = None
    service_name: str = "kubemedic"


class WebhookSettings(BaseModel):
    """The Alertmanager webhook server and its incident worker (`kubemedic serve`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=9095, ge=0, le=65535)
    #: When set, POSTs must carry `Authorization: Bearer <token>` (Alertmanager's
    #: `http_config.authorization`); health and metrics endpoints stay open.
    bearer_token: SecretStr | None = None
    #: Incidents run at once; more wait in the queue.
    max_concurrent_incidents: int = Field(default=2, ge=1, le=32)
    #: Largest request body accepted (Alertmanager caps a group at a few hundred KiB).
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    #: After an incident closes, the same alert (fingerprint) starts no new one for this long.
    dedup_cooldown_s: float = Field(default=600.0, ge=0.0)
    #: A worker that has not renewed its lease for this long is dead: its jobs are requeued.
    lease_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    #: The SQLite queue file when no Redis is configured (default: data_dir/queue.sqlite).
    queue_path: Path | None = None


class Settings(BaseSettings):
    """Everything kubemedic can be told, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="KUBEMEDIC_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    llm: LLMSettings = Field(default_factory=LLMSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    data_dir: Path = Field(
        default=Path(".kubemedic"),
        validation_alias=AliasChoices("data_dir", "KUBEMEDIC_DATA_DIR"),
        description="transcripts, post-mortems, the SQLite checkpoints",
    )

    def incident_dir(self, incident_id: str) -> Path:
        """Where an incident's files live: transcript.json (an IncidentReport), post-mortems."""
        return self.data_dir / "incidents" / incident_id

    @property
    def sqlite_path(self) -> Path:
        return self.checkpoint.sqlite_path or self.data_dir / "checkpoints.sqlite"

    @property
    def queue_path(self) -> Path:
        """The webhook's SQLite queue (used when no Redis URL is set)."""
        return self.webhook.queue_path or self.data_dir / "queue.sqlite"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    return Settings(**overrides)
