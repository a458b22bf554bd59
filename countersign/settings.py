"""Settings shared by the worker, the API and the CLI, read from the environment.

Every field is documented in the README's settings table. Names without the
``COUNTERSIGN_`` prefix (``OPENAI_*``, ``TEMPORAL_*``) follow the conventions of
the libraries they configure, so existing environments keep working.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile

WEBHOOK_SECRET_PREFIX = "whsec_"
#: Requests per minute and route for principals holding these roles: a backend
#: principal driving many flows at once, and approvers working an inbox.
DEFAULT_ROLE_RATE_LIMITS = {"service": 6000, "approver": 600}


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Countersign configuration.

    Attributes are read from environment variables (case-insensitive); the
    validation alias of each field is the variable's name.
    """

    # Inputs stay out of validation errors: several settings are secrets.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    # Temporal connection.
    temporal_address: str = Field("localhost:7233", validation_alias=_env("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=_env("TEMPORAL_NAMESPACE"))
    temporal_task_queue: str = Field("countersign", validation_alias=_env("COUNTERSIGN_TASK_QUEUE"))
    temporal_api_key: SecretStr | None = Field(None, validation_alias=_env("TEMPORAL_API_KEY"))
    # TLS and gRPC metadata come from temporalio.envconfig, which reads its own
    # variables and profiles (see countersign/temporal.py).
    temporal_profile: str | None = Field(None, validation_alias=_env("TEMPORAL_PROFILE"))
    temporal_config_file: Path | None = Field(None, validation_alias=_env("TEMPORAL_CONFIG_FILE"))

    # Model.
    model_provider: Literal["auto", "openai", "demo"] = Field(
        "auto", validation_alias=_env("COUNTERSIGN_MODEL")
    )
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    openai_model: str = Field("gpt-5.2", validation_alias=_env("OPENAI_MODEL"))
    openai_api: Literal["responses", "chat"] = Field(
        "responses", validation_alias=_env("COUNTERSIGN_OPENAI_API")
    )
    llm_timeout: timedelta = Field(
        timedelta(seconds=120), validation_alias=_env("COUNTERSIGN_LLM_TIMEOUT")
    )
    llm_max_attempts: int = Field(6, ge=1, validation_alias=_env("COUNTERSIGN_LLM_MAX_ATTEMPTS"))
    llm_retry_initial_interval: timedelta = Field(
        timedelta(seconds=1), validation_alias=_env("COUNTERSIGN_LLM_RETRY_INITIAL_INTERVAL")
    )
    llm_heartbeat_timeout: timedelta = Field(
        timedelta(seconds=10), validation_alias=_env("COUNTERSIGN_LLM_HEARTBEAT_TIMEOUT")
    )

    # Worker.
    worker_max_cached_workflows: int = Field(
        1000, ge=0, validation_alias=_env("COUNTERSIGN_WORKER_MAX_CACHED_WORKFLOWS")
    )

    # Runs and tools.
    max_turns: int = Field(10, ge=1, validation_alias=_env("COUNTERSIGN_MAX_TURNS"))
    confirmation_ttl: timedelta = Field(
        timedelta(hours=24), validation_alias=_env("COUNTERSIGN_CONFIRMATION_TTL")
    )
    tool_timeout: timedelta = Field(
        timedelta(seconds=60), validation_alias=_env("COUNTERSIGN_TOOL_TIMEOUT")
    )
    tool_heartbeat_timeout: timedelta = Field(
        timedelta(seconds=20), validation_alias=_env("COUNTERSIGN_TOOL_HEARTBEAT_TIMEOUT")
    )
    tool_output_limit: int = Field(
        8000, ge=64, validation_alias=_env("COUNTERSIGN_TOOL_OUTPUT_LIMIT")
    )
    session_context_limit: int = Field(
        20, ge=0, validation_alias=_env("COUNTERSIGN_SESSION_CONTEXT_MESSAGES")
    )
    demo_db_path: Path = Field(
        Path("data/demo.sqlite3"), validation_alias=_env("COUNTERSIGN_DEMO_DB")
    )
    agent_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("COUNTERSIGN_AGENT_MODULES")
    )

    # API.
    api_host: str = Field("127.0.0.1", validation_alias=_env("COUNTERSIGN_API_HOST"))
    api_port: int = Field(7777, validation_alias=_env("COUNTERSIGN_API_PORT"))
    wait_budget: timedelta = Field(
        timedelta(seconds=30), validation_alias=_env("COUNTERSIGN_WAIT_BUDGET")
    )
    # A streamed run may stay silent for the whole wait budget; proxies cut idle streams.
    sse_ping_interval: timedelta = Field(
        timedelta(seconds=15), gt=0, validation_alias=_env("COUNTERSIGN_SSE_PING_INTERVAL")
    )

    # Security.
    auth_disabled: bool = Field(False, validation_alias=_env("COUNTERSIGN_AUTH_DISABLED"))
    api_keys_file: Path = Field(
        Path("data/api_keys.json"), validation_alias=_env("COUNTERSIGN_API_KEYS_FILE")
    )
    jwt_secret: SecretStr | None = Field(None, validation_alias=_env("COUNTERSIGN_JWT_SECRET"))
    jwt_public_key: str | None = Field(None, validation_alias=_env("COUNTERSIGN_JWT_PUBLIC_KEY"))
    jwt_jwks_url: str | None = Field(None, validation_alias=_env("COUNTERSIGN_JWT_JWKS_URL"))
    jwt_jwks_cache: timedelta = Field(
        timedelta(minutes=5), validation_alias=_env("COUNTERSIGN_JWT_JWKS_CACHE")
    )
    jwt_jwks_cooldown: timedelta = Field(
        timedelta(seconds=30), validation_alias=_env("COUNTERSIGN_JWT_JWKS_COOLDOWN")
    )
    jwt_audience: str | None = Field(None, validation_alias=_env("COUNTERSIGN_JWT_AUDIENCE"))
    jwt_issuer: str | None = Field(None, validation_alias=_env("COUNTERSIGN_JWT_ISSUER"))
    jwt_leeway: timedelta = Field(
        timedelta(seconds=30), validation_alias=_env("COUNTERSIGN_JWT_LEEWAY")
    )
    decision_token_secret: SecretStr | None = Field(
        None, validation_alias=_env("COUNTERSIGN_DECISION_TOKEN_SECRET")
    )
    # Comma-separated, newest first: the API signs with the first, the worker
    # accepts any (several while rotating). See countersign/decision_proof.py.
    decision_proof_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, validation_alias=_env("COUNTERSIGN_DECISION_PROOF_KEYS")
    )
    # Signs each run's audit head (countersign/audit_export.py); never enters Temporal.
    audit_head_key: SecretStr | None = Field(
        None, validation_alias=_env("COUNTERSIGN_AUDIT_HEAD_KEY")
    )
    operator_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("COUNTERSIGN_OPERATOR_IDS")
    )
    rate_limit_per_minute: int = Field(
        120, ge=0, validation_alias=_env("COUNTERSIGN_RATE_LIMIT_PER_MINUTE")
    )
    rate_limit_roles: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_RATE_LIMITS),
        validation_alias=_env("COUNTERSIGN_RATE_LIMIT_ROLES"),
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, validation_alias=_env("COUNTERSIGN_MAX_BODY_BYTES")
    )
    max_message_chars: int = Field(
        16_000, ge=1, validation_alias=_env("COUNTERSIGN_MAX_MESSAGE_CHARS")
    )
    max_decisions_per_request: int = Field(
        100, ge=1, validation_alias=_env("COUNTERSIGN_MAX_DECISIONS")
    )

    # Webhooks (push).
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("COUNTERSIGN_WEBHOOK_URLS")
    )
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("COUNTERSIGN_WEBHOOK_SECRETS", "COUNTERSIGN_WEBHOOK_SECRET"),
    )
    webhook_allow_unsigned: bool = Field(
        False, validation_alias=_env("COUNTERSIGN_WEBHOOK_ALLOW_UNSIGNED")
    )
    webhook_timeout: timedelta = Field(
        timedelta(seconds=10), validation_alias=_env("COUNTERSIGN_WEBHOOK_TIMEOUT")
    )
    webhook_retry_for: timedelta = Field(
        timedelta(hours=24), validation_alias=_env("COUNTERSIGN_WEBHOOK_RETRY_FOR")
    )

    # Observability.
    worker_metrics_port: int | None = Field(
        None, validation_alias=_env("COUNTERSIGN_WORKER_METRICS_PORT")
    )
    otel_endpoint: str | None = Field(None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"))

    # Logging.
    log_level: str = Field("INFO", validation_alias=_env("COUNTERSIGN_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("COUNTERSIGN_LOG_FORMAT")
    )

    @field_validator(
        "llm_timeout",
        "llm_retry_initial_interval",
        "llm_heartbeat_timeout",
        "confirmation_ttl",
        "tool_timeout",
        "tool_heartbeat_timeout",
        "wait_budget",
        "sse_ping_interval",
        "jwt_leeway",
        "jwt_jwks_cache",
        "jwt_jwks_cooldown",
        "webhook_timeout",
        "webhook_retry_for",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: object) -> object:
        # Plain numbers in the environment are seconds; ISO 8601 ("PT20S",
        # "P7D") and "HH:MM:SS" are accepted as pydantic reads them.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator("agent_modules", "webhook_urls", "operator_ids", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Comma-separated in the environment; NoDecode keeps pydantic-settings
        # from trying to parse it as JSON first.
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _webhook_secrets(cls, value: object) -> object:
        # Several at once while rotating; each a Standard Webhooks secret,
        # checked here so a typo stops the process.
        return _checked_secrets(value, _check_webhook_secret)

    @field_validator("decision_proof_keys", mode="before")
    @classmethod
    def _proof_keys(cls, value: object) -> object:
        return _checked_secrets(value, _check_proof_key)

    @field_validator("rate_limit_roles", mode="before")
    @classmethod
    def _role_budgets(cls, value: object) -> object:
        # "service=6000,approver=600" in the environment; these replace the
        # defaults, so an operator states every role budget they want.
        if not isinstance(value, str):
            return value
        budgets: dict[str, object] = {}
        for item in value.split(","):
            if item.strip():
                role, sep, budget = item.partition("=")
                if not sep or not role.strip():
                    raise ValueError(
                        "COUNTERSIGN_RATE_LIMIT_ROLES must read role=requests_per_minute,..."
                    )
                budgets[role.strip()] = budget.strip()
        return budgets

    @field_validator("rate_limit_roles")
    @classmethod
    def _budgets_not_negative(cls, value: dict[str, int]) -> dict[str, int]:
        if any(budget < 0 for budget in value.values()):
            raise ValueError("COUNTERSIGN_RATE_LIMIT_ROLES budgets must be 0 (unlimited) or more")
        return value

    @model_validator(mode="after")
    def _temporal_target(self) -> Settings:
        # Address and namespace not given explicitly come from the Temporal
        # profile (temporalio.envconfig), so whoever reads these fields (logs,
        # /health) names the service the client connects to. Best effort: a
        # broken profile is reported, clearly, by countersign.temporal.connect.
        explicit = self.model_fields_set
        if {"temporal_address", "temporal_namespace"} <= explicit:
            return self
        try:
            profile = ClientConfigProfile.load(
                profile=self.temporal_profile, config_source=self.temporal_config_file
            )
        except RuntimeError:
            return self
        if "temporal_address" not in explicit and profile.address:
            self.temporal_address = profile.address
        if "temporal_namespace" not in explicit and profile.namespace:
            self.temporal_namespace = profile.namespace
        return self

    @model_validator(mode="after")
    def _jwt_config(self) -> Settings:
        # Imported here: the JWT module reads these settings.
        from countersign.security.jwt_auth import JwtConfig

        problem = JwtConfig.from_settings(self).problem
        if problem:
            raise ValueError(problem)
        return self

    @property
    def uses_demo_model(self) -> bool:
        """Whether model turns go to the offline demo model instead of OpenAI."""
        if self.model_provider == "demo":
            return True
        if self.model_provider == "openai":
            return False
        return self.openai_api_key is None or not self.openai_api_key.get_secret_value()


def _checked_secrets(value: object, check: Callable[[str], None]) -> object:
    """Secrets listed comma- or space-separated in the environment, each passed to ``check``."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if isinstance(items, list):
        for item in items:
            raw = item.get_secret_value() if isinstance(item, SecretStr) else item
            if isinstance(raw, str):
                check(raw)
    return items


def _check_proof_key(key: str) -> None:
    if len(key.encode()) < 32:
        # The key itself is never echoed.
        raise ValueError("each COUNTERSIGN_DECISION_PROOF_KEYS entry must be at least 32 bytes")


def _check_webhook_secret(secret: str) -> None:
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except binascii.Error:
        key = b""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX) or len(key) < 24:
        # The secret itself is never echoed.
        raise ValueError(
            "each COUNTERSIGN_WEBHOOK_SECRETS entry must be 'whsec_' and the base64 of "
            "at least 24 random bytes (the Standard Webhooks format)"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
