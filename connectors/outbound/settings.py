"""Outbound settings from ``S117HUB_OUTBOUND_*`` environment variables (or given in code)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OutboundSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="S117HUB_OUTBOUND_", extra="ignore")

    alert_webhook_url: str | None = Field(
        default=None, description="POSTed a JSON alert at the warning threshold and at breach.")
    alert_warning_hours: float = Field(
        default=24.0, ge=0, description="Warn when less than this is left before the due time.")
    alert_timeout_seconds: float = Field(default=5.0, gt=0)
    sweep_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often the sweeper re-issues hints and checks SLAs.")
    batch_size: int = Field(default=32, ge=1, le=500,
                            description="Most deliveries one worker claims at once.")
    lease_seconds: float = Field(
        default=120.0, gt=0,
        description="A claim not settled by then is taken back (at least 2x the timeout).")
    max_delay_hint_seconds: float = Field(
        default=60.0, gt=0, description="Longest delayed broker hint for a retry.")
