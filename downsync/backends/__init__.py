"""Calendar backends, one package each, found by looking: a backend is a subpackage whose ``BACKEND`` says its
name, its tenant settings (a pydantic model; ``SecretStr`` fields are stored encrypted) and how to open a
``CalendarGateway`` for a tenant. Adding a backend is adding such a package; nothing else changes.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from downsync.core.gateway import CalendarGateway
from downsync.settings import Settings


@dataclass(frozen=True)
class OpenContext:
    """What a gateway needs besides its tenant's settings."""

    tenant_id: int
    settings: Settings
    # Exchange writes this process makes at once (a worker's --concurrency): connection pools hold at least as many.
    calls_at_once: int = 1


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    options: type[BaseModel]
    # Imports the backend's heavy parts only when a gateway is really needed.
    open: Callable[[Any, OpenContext], CalendarGateway]
    # ``downsync tenant check``: tries the settings (and a mailbox, if given); returns what is wrong (empty: all good).
    check: Callable[[CalendarGateway, str | None], list[str]] | None = None


class BackendError(ValueError):
    pass


@functools.cache
def backends() -> dict[str, Backend]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "BACKEND", None)
        if isinstance(spec, Backend):
            found[spec.name] = spec
    return found


def backend(name: str) -> Backend:
    try:
        return backends()[name]
    except KeyError:
        raise BackendError(f"no backend {name!r}; there are {', '.join(sorted(backends()))}") from None


def secret_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, info in model.model_fields.items() if info.annotation in (SecretStr, SecretStr | None)]


def split(options: BaseModel) -> tuple[dict[str, Any], dict[str, str]]:
    """A backend's validated settings as the store keeps them: plain options, and secrets still in the clear
    (the caller encrypts them)."""
    secrets = secret_fields(type(options))
    plain = options.model_dump(mode="json", exclude=set(secrets))
    hidden = {name: value.get_secret_value() for name in secrets if (value := getattr(options, name)) is not None}
    return plain, hidden


def validate(name: str, values: dict[str, Any]) -> BaseModel:
    """A backend's settings from what a caller gave, with one clear message for everything wrong."""
    model = backend(name).options
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}" for e in exc.errors())
        raise BackendError(f"{name} settings: {problems}") from None


_cache: dict[tuple[int, str], CalendarGateway] = {}
_cache_lock = threading.Lock()


def open_gateway(
    tenant_id: int, name: str, options: BaseModel, settings: Settings, version: str, calls_at_once: int = 1
) -> CalendarGateway:
    """The tenant's gateway (connection pools, tokens), shared in this process until the tenant's settings change,
    which ``version`` tells."""
    key = (tenant_id, version)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    gateway = backend(name).open(options, OpenContext(tenant_id, settings, calls_at_once))
    with _cache_lock:
        for stale in [k for k in _cache if k[0] == tenant_id and k != key]:
            _cache.pop(stale)
        return _cache.setdefault(key, gateway)
