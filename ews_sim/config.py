"""The organisation from a YAML or JSON file, the command line's ``--domain`` shortcut, or both.

EWS reads ``service_accounts``, ``mailboxes``, ``domains`` and ``aliases`` (more addresses of a
mailbox, honoured by both front doors); Microsoft Graph adds ``apps`` (Entra app registrations
with their application access policy), ``on_premises`` and ``teams_disabled`` mailboxes, and
``token_lifetime_seconds``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ews_sim.store import Organisation

DEMO_PASSWORD = "demo"
DEMO_CLIENT_ID = "demo"
DEMO_CLIENT_SECRET = "demo"
DEFAULT_ROLES = ("Calendars.ReadWrite",)
DEFAULT_TOKEN_LIFETIME = 3600


class ConfigError(ValueError):
    pass


@dataclass
class AccountConfig:
    username: str
    password: str
    impersonate: list[str]


@dataclass
class AppConfig:
    """An Entra app registration allowed to call Graph: a secret or a certificate, and the mailboxes it may reach."""

    tenant: str
    client_id: str
    client_secret: str | None = None
    certificate: str | None = None  # PEM of the public certificate
    mailboxes: list[str] = field(default_factory=lambda: ["*"])
    roles: list[str] = field(default_factory=lambda: list(DEFAULT_ROLES))

    @classmethod
    def from_dict(cls, entry: Any, where: str) -> AppConfig:
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping")
        unknown = set(entry) - {"tenant", "client_id", "client_secret", "certificate", "mailboxes", "roles"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        for key in ("tenant", "client_id"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{where} needs {key}")
        secret, certificate = entry.get("client_secret"), entry.get("certificate")
        if (secret is None) == (certificate is None):
            raise ConfigError(f"{where} needs exactly one of client_secret and certificate")
        if secret is not None and not isinstance(secret, str):
            raise ConfigError(f"{where}.client_secret must be a string")
        if certificate is not None and (not isinstance(certificate, str) or "BEGIN CERTIFICATE" not in certificate):
            raise ConfigError(f"{where}.certificate must be the PEM text of an X.509 certificate")
        mailboxes = impersonate_list(entry.get("mailboxes", ["*"]))
        if mailboxes is None:
            raise ConfigError(f'{where}.mailboxes must be a list of addresses or "*"')
        roles = entry.get("roles", list(DEFAULT_ROLES))
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ConfigError(f"{where}.roles must be a list of strings")
        return cls(
            tenant=entry["tenant"].strip().lower(),
            client_id=entry["client_id"].strip(),
            client_secret=secret,
            certificate=certificate,
            mailboxes=mailboxes,
            roles=roles,
        )


@dataclass
class OrgConfig:
    mailboxes: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    accounts: list[AccountConfig] = field(default_factory=list)
    apps: list[AppConfig] = field(default_factory=list)
    on_premises: list[str] = field(default_factory=list)
    teams_disabled: list[str] = field(default_factory=list)
    token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME
    aliases: dict[str, list[str]] = field(default_factory=dict)  # primary address -> its other addresses

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
        unknown = set(raw) - {
            "service_accounts",
            "mailboxes",
            "domains",
            "apps",
            "on_premises",
            "teams_disabled",
            "token_lifetime_seconds",
            "aliases",
        }
        if unknown:
            raise ConfigError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
        config = cls(
            mailboxes=_strings(raw, "mailboxes", source),
            domains=_strings(raw, "domains", source),
            on_premises=[e.strip().lower() for e in _strings(raw, "on_premises", source)],
            teams_disabled=[e.strip().lower() for e in _strings(raw, "teams_disabled", source)],
        )
        lifetime = raw.get("token_lifetime_seconds", DEFAULT_TOKEN_LIFETIME)
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 0 <= lifetime <= 86_400:
            raise ConfigError(f"{source}: token_lifetime_seconds must be an integer from 0 to 86400")
        config.token_lifetime_seconds = lifetime
        config.aliases = aliases_map(raw.get("aliases") or {}, f"{source}: aliases")
        taken = {m.strip().lower() for m in config.mailboxes} | {a.username.lower() for a in config.accounts}
        clash = sorted(taken & {a for others in config.aliases.values() for a in others})
        if clash:
            raise ConfigError(f"{source}: aliases: {', '.join(clash)} is a mailbox of its own")
        apps = raw.get("apps") or []
        if not isinstance(apps, list):
            raise ConfigError(f"{source}: apps must be a list")
        config.apps = [AppConfig.from_dict(entry, f"{source}: apps[{n}]") for n, entry in enumerate(apps)]
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
        """``--domain D``: every address of D is a mailbox, ``svc@D`` / ``demo`` may impersonate them all, and the
        Graph app ``demo`` (secret ``demo``) of tenant D may reach every one of them."""
        domain = domain.strip().lower()
        self.domains.append(domain)
        self.accounts.append(AccountConfig(f"svc@{domain}", DEMO_PASSWORD, ["*"]))
        self.apps.append(AppConfig(tenant=domain, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET))

    def apply(self, org: Organisation) -> None:
        org.add_mailboxes(self.mailboxes)
        org.add_aliases(self.aliases)
        org.domains.update(d.lower() for d in self.domains)
        for account in self.accounts:
            org.add_account(account.username, account.password, account.impersonate)
            # A service account has a mailbox of its own, as in a real organisation.
            org.add_mailboxes([account.username])


def aliases_map(value: Any, where: str) -> dict[str, list[str]]:
    """``{"bob@x.com": ["robert@x.com", ...]}``, lower-cased; every address at most once."""
    if not isinstance(value, dict):
        raise ConfigError(f'{where} must map a primary address to its others: {{"bob@x.com": ["robert@x.com"]}}')
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for primary, others in value.items():
        if not isinstance(primary, str) or "@" not in primary:
            raise ConfigError(f"{where}: {primary!r} is not an address")
        if not isinstance(others, list) or not all(isinstance(o, str) and "@" in o for o in others):
            raise ConfigError(f"{where}: the aliases of {primary} must be a list of addresses")
        main = primary.strip().lower()
        mine = [o.strip().lower() for o in others]
        for address in (main, *mine):
            if address in seen:
                raise ConfigError(f"{where}: {address} is given twice")
            seen.add(address)
        out[main] = mine
    return out


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
