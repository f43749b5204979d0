"""Settings from ``S117HUB_*`` environment variables and an optional config file.

The config file (TOML or JSON, ``S117HUB_CONFIG_FILE``) holds what is per partnership rather
than per process: local policy choices, GP practice → ICB map, source precedence, sources and
subscriptions.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PolicyConfig(BaseModel):
    s17_leave_starts_entitlement: bool = True
    practice_to_icb: dict[str, str] = Field(default_factory=dict)


class IdentityConfig(BaseModel):
    """Probabilistic identity matching in the write path (match probabilities, 0..1)."""

    enabled: bool = True
    link_threshold: float = Field(default=0.95, gt=0, lt=1)
    review_threshold: float = Field(default=0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _review_below_link(self) -> IdentityConfig:
        if self.review_threshold > self.link_threshold:
            raise ValueError("identity.review_threshold must not exceed link_threshold")
        return self


class PrecedenceConfig(BaseModel):
    """Whose word stands when sources disagree, per field group: source-id patterns (globs,
    ``trust-*``) in order of preference. Empty: no rule, every disagreement is an exception."""

    model_config = ConfigDict(extra="forbid")  # a misspelt group must not pass silently

    detention: list[str] = Field(default_factory=list)
    ordinary_residence: list[str] = Field(default_factory=list)
    gp_practice: list[str] = Field(default_factory=list)
    named_practitioner: list[str] = Field(default_factory=list)
    death: list[str] = Field(default_factory=list)
    aftercare_plan: list[str] = Field(default_factory=list)
    review: list[str] = Field(default_factory=list)

    @field_validator("detention", "ordinary_residence", "gp_practice", "named_practitioner",
                     "death", "aftercare_plan", "review")
    @classmethod
    def _source_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern.strip() or pattern != pattern.strip():
                raise ValueError("a precedence pattern is a source id or glob, not blank "
                                 "or padded")
            if ":" in pattern:
                raise ValueError(f"precedence pattern {pattern!r}: patterns name source ids "
                                 "(globs such as 'trust-*'), not kinds")
        return patterns


class FileConfig(BaseModel):
    """What an optional config file may hold; later issues add sources and subscriptions."""

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    precedence: PrecedenceConfig = Field(default_factory=PrecedenceConfig)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    subscriptions: list[dict[str, Any]] = Field(default_factory=list)


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    return host, int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="S117HUB_", extra="ignore")

    database_url: str = "sqlite:///var/s117hub.sqlite3"
    broker_url: str = "stub://"
    http: str = "127.0.0.1:8117"
    mllp: str = "127.0.0.1:2575"
    # MLLP connections served at once; one more is closed on accept (a leaking sender must
    # not exhaust file descriptors). Trusts hold a handful each.
    mllp_max_connections: int = Field(default=256, ge=1)
    config_file: Path | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # How often ``serve`` recomputes the whole register (reviews falling due, CTOs ending);
    # 0 leaves it to a scheduled ``s117hub reconcile``.
    reconcile_every_hours: float = 24.0
    # Prepended to the broker's queue names, so hubs sharing one RabbitMQ or Redis (staging
    # beside production) never take each other's work.
    queue_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")

    @field_validator("database_url")
    @classmethod
    def _no_placeholder(cls, value: str) -> str:
        if "changeme" in value.lower():
            raise ValueError("S117HUB_DATABASE_URL still holds a placeholder password")
        return value

    @property
    def http_bind(self) -> tuple[str, int]:
        return _host_port(self.http, 8117)

    @property
    def mllp_bind(self) -> tuple[str, int]:
        return _host_port(self.mllp, 2575)

    def load_file(self) -> FileConfig:
        if self.config_file is None:
            return FileConfig()
        text = self.config_file.read_text(encoding="utf-8")
        raw = json.loads(text) if self.config_file.suffix == ".json" else tomllib.loads(text)
        return FileConfig.model_validate(raw)
