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
    alert_retry_min_seconds: float = Field(
        default=10.0, gt=0, description="An alert the webhook did not accept is tried again "
        "after this (at least the alert timeout), then ever further apart.")
    alert_retry_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait between tries of one alert.")
    alert_retry_hours: float = Field(
        default=72.0, gt=0, description="An alert not accepted within this long of being "
        "raised is given up (the breach stays visible: the exception and /api/v1/sla).")
    sweep_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often the sweeper re-issues hints and checks SLAs.")
    batch_size: int = Field(default=32, ge=1, le=500,
                            description="Most deliveries one worker claims at once.")
    lease_seconds: float = Field(
        default=120.0, gt=0,
        description="A claim not settled by then is taken back (at least 2x the timeout).")
    max_delay_hint_seconds: float = Field(
        default=60.0, gt=0, description="Longest delayed broker hint for a retry.")
