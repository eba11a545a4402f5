"""The organisation from a YAML or JSON file, the command line's ``--domain`` shortcut, or both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ews_sim.store import Organisation

DEMO_PASSWORD = "demo"


class ConfigError(ValueError):
    pass


@dataclass
class AccountConfig:
    username: str
    password: str
    impersonate: list[str]


@dataclass
class OrgConfig:
    mailboxes: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    accounts: list[AccountConfig] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> OrgConfig:
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        return cls.from_dict(raw or {}, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "config") -> OrgConfig:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the top level must be a mapping")
        unknown = set(raw) - {"service_accounts", "mailboxes", "domains"}
        if unknown:
            raise ConfigError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
        config = cls(mailboxes=_strings(raw, "mailboxes", source), domains=_strings(raw, "domains", source))
        entries = raw.get("service_accounts") or []
        if not isinstance(entries, list):
            # Iterating a mapping or a string would report a confusing service_accounts[0] problem.
            raise ConfigError(f"{source}: service_accounts must be a list")
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("username") or entry.get("password") is None:
                raise ConfigError(f"{source}: service_accounts[{n}] needs username and password")
            impersonate = impersonate_list(entry.get("impersonate", []))
            if impersonate is None:
                raise ConfigError(f'{source}: service_accounts[{n}].impersonate must be a list of addresses or "*"')
            config.accounts.append(AccountConfig(str(entry["username"]), str(entry["password"]), impersonate))
        return config

    def add_demo_domain(self, domain: str) -> None:
        """``--domain D``: every address of D is a mailbox, and ``svc@D`` / ``demo`` may impersonate them all."""
        domain = domain.strip().lower()
        self.domains.append(domain)
        self.accounts.append(AccountConfig(f"svc@{domain}", DEMO_PASSWORD, ["*"]))

    def apply(self, org: Organisation) -> None:
        org.add_mailboxes(self.mailboxes)
        org.domains.update(d.lower() for d in self.domains)
        for account in self.accounts:
            org.add_account(account.username, account.password, account.impersonate)
            # A service account has a mailbox of its own, as in a real organisation.
            org.add_mailboxes([account.username])


def impersonate_list(value: Any) -> list[str] | None:
    """A list of addresses, or a bare ``"*"`` as the error messages and YAML users write it; None if neither."""
    if value == "*":
        return ["*"]
    if isinstance(value, list) and all(isinstance(i, str) for i in value):
        return value
    return None


def _strings(raw: dict[str, Any], key: str, source: str) -> list[str]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {key} must be a list of strings")
    return value
