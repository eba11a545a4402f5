"""The one settings object, read once from ``DOWNSYNC_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only for development and the embedded demo; any other environment must set its own.
DEV_SECRET_KEY = "downsync-development-key-change-me"
BUSY_TYPES = ("Busy", "OOF", "Tentative", "WorkingElsewhere")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOWNSYNC_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # Local files (the default SQLite store, the beat schedule, the embedded Redis) live here.
    state_dir: str = str(Path(".downsync").absolute())
    # Empty means a SQLite file in the state folder; production uses postgresql+psycopg://...
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    sentry_dsn: SecretStr | None = None
    # Test each pooled connection with a round trip before use: a store that restarted then costs an API caller
    # nothing. ``downsync worker`` turns it off (a round trip per transaction, ~1/6 of a placement's store time);
    # a dead connection there fails one transaction, which is retried like any store blip.
    database_pre_ping: bool = True
    # Store connections each process keeps open. Up to as many again are opened when more are in use at once, and
    # closed when given back: an API process runs up to 40 requests' store work at once, and with 10 kept open a
    # busy API opened (and PostgreSQL forked a backend for) a new connection for every fourth write it accepted.
    database_pool_size: int = Field(default=20, ge=1, le=500)

    # Postbacks and meetings: how long a write call waits for its mailboxes before answering 202.
    postback_wait_seconds: float = Field(default=10.0, ge=0, le=60)
    postback_wait_max_seconds: float = Field(default=60.0, ge=0, le=600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Exchange calls from workers.
    exchange_timeout_seconds: float = Field(default=30.0, gt=0)
    # Transient failures are retried with exponential back-off (never sooner than the server asks) until this
    # long after the first try; throttling alone never makes a result final.
    retry_budget_seconds: float = Field(default=86400.0, gt=0)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    broker_visibility_timeout_seconds: int = Field(default=3600, ge=60)
    # How long an address's resolution (the primary address of the mailbox it names, or that it names none) is
    # trusted before the directory is asked again; 0 asks every time it is needed.
    address_cache_seconds: float = Field(default=86400.0, ge=0)
    # A worker's claim on a placement lives this long unless renewed (every third of it) while it works;
    # a killed or stalled worker's work is runnable again this soon.
    lease_seconds: float = Field(default=15.0, ge=1)
    # How long a write sent to Exchange may still land after its sender lost track of it (timed out, vanished):
    # no second create for the mailbox before then, and a check for a late copy after it.
    settle_seconds: float = Field(default=30.0, ge=0)
    # The dispatcher: how often each worker looks for due work, and when a message not consumed yet is sent again.
    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    # Each worker serves its Prometheus metrics on this port (0: none).
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    redeliver_seconds: float = Field(default=30.0, gt=0)
    # Placements of one write (or one dispatcher round) carried by one broker message, converged side by side by
    # the worker that takes it: fewer messages cost workers less CPU, more of them spread a big write wider.
    placements_per_message: int = Field(default=8, ge=1, le=100)

    # Authentication (the contract, section 6).
    access_token_seconds: int = Field(default=3600, ge=60)
    refresh_token_days: int = Field(default=90, ge=1)
    hmac_enabled: bool = True
    hmac_skew_seconds: float = Field(default=300.0, gt=0)
    # The seeds' administrator login, off unless turned on; it acts for one tenant and is logged as deprecated.
    legacy_basic_enabled: bool = False
    legacy_basic_username: str = "admin"
    legacy_basic_password: SecretStr | None = None
    legacy_basic_tenant: str = ""
    # Per-tenant rate limits (``limits`` notation), shared by every API process through Redis; tenants may override.
    rate_limit_writes: str = "100/second"
    rate_limit_availability: str = "20/second"
    # Date-times outside these years are refused (422): Exchange stores nothing sensible there.
    min_year: int = Field(default=1900, ge=1)
    max_year: int = Field(default=2200, le=9998)

    # Availability (synchronous).
    availability_deadline_seconds: float = Field(default=8.0, gt=0, le=60)
    availability_max_entries: int = Field(default=1000, ge=1)
    availability_max_window_days: int = Field(default=366, ge=1)
    availability_concurrency: int = Field(default=8, ge=1, le=26)

    # Result webhooks. Receivers on private, loopback or link-local addresses are refused unless allowed: by default
    # they are everywhere but in production (a development receiver runs on localhost), where they would let a tenant
    # make the service call into its own network. Production also requires https.
    webhook_allow_private: bool = Field(default_factory=lambda data: data.get("environment") != "production")
    # One delivery attempt: connecting, sending and the receiver's answer each get this long; a delivery's lease
    # (how soon a killed worker's delivery is sent again) is four times it plus 2 s.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # A delivery no receiver took with a 2xx is retried with exponential back-off (jitter only ever lengthening it)
    # for this long after its first attempt, then it is failed (and may still be redelivered by hand).
    webhook_retry_seconds: float = Field(default=86400.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # After a rotation the previous secret still signs deliveries this long, unless retired sooner.
    webhook_secret_grace_seconds: float = Field(default=86400.0, ge=0)

    @model_validator(mode="after")
    def _defaults_and_limits(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{Path(self.state_dir) / 'downsync.db'}"
        for limit in (self.rate_limit_writes, self.rate_limit_availability):
            try:
                parse_many(limit)
            except ValueError:
                raise ValueError(f"{limit!r} is not a rate limit such as 100/second") from None
        if self.legacy_basic_enabled and (self.legacy_basic_password is None or not self.legacy_basic_tenant):
            raise ValueError(
                "the legacy Basic login needs DOWNSYNC_LEGACY_BASIC_PASSWORD and DOWNSYNC_LEGACY_BASIC_TENANT"
            )
        if self.environment == "production" and self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            raise ValueError("DOWNSYNC_SECRET_KEY must be set to a secret of your own in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@functools.cache
def get_settings() -> Settings:
    return Settings()
