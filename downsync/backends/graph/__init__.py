"""Microsoft Graph: Exchange Online (Microsoft 365), now that EWS is switched off there.

An Entra app registration with the application permission ``Calendars.ReadWrite`` gets app-only
tokens from msal (client secret or certificate) and calls Graph over httpx. Authority and Graph URL
are settings, so the same code reaches national clouds and the project's simulator.
"""

from __future__ import annotations

from hashlib import sha1
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from downsync.backends import Backend, OpenContext
from downsync.core.gateway import CalendarGateway

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
PUBLIC_GRAPH = "https://graph.microsoft.com/v1.0"


class GraphOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    azure_tenant: str = Field(
        description="The Entra (Azure AD) tenant: its id or a verified domain.",
        json_schema_extra={"option": "--azure-tenant"},
    )
    client_id: str = Field(description="The app registration's client id.", json_schema_extra={"option": "--client-id"})
    client_secret: SecretStr | None = Field(
        default=None, description="A client secret of the app.", json_schema_extra={"option": "--client-secret"}
    )
    certificate: SecretStr | None = Field(
        default=None,
        description="A PEM file with the app certificate's private key and the certificate itself.",
        json_schema_extra={"option": "--certificate", "file": True},
    )
    authority: str = Field(
        default=PUBLIC_AUTHORITY,
        description="The Entra login host (another for national clouds).",
        json_schema_extra={"option": "--authority"},
    )
    graph_url: str = Field(
        default=PUBLIC_GRAPH,
        description="Graph's base URL, with its version.",
        json_schema_extra={"option": "--graph-url"},
    )
    ca_bundle: str | None = Field(
        default=None,
        description="A PEM file of the CAs to trust for the authority and Graph (default: the system's).",
        json_schema_extra={"option": "--ca-bundle", "file": True},
    )

    @field_validator("authority", "graph_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (msal accepts no other)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> GraphOptions:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of --client-secret and --certificate")
        if self.certificate is not None:
            certificate_thumbprint(self.certificate.get_secret_value())
        return self


def certificate_thumbprint(pem: str) -> str:
    """The SHA-1 thumbprint Entra knows the certificate by; the PEM must hold the key and the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if "PRIVATE KEY-----" not in pem or "BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("the certificate file must hold the private key and the certificate (PEM)")
    try:
        cert = x509.load_pem_x509_certificate(pem[pem.index("-----BEGIN CERTIFICATE-----") :].encode())
    except ValueError as exc:
        raise ValueError(f"the certificate cannot be read: {exc}") from None
    return sha1(cert.public_bytes(Encoding.DER)).hexdigest().upper()


def _open(options: GraphOptions, context: OpenContext) -> CalendarGateway:
    from downsync.backends.graph.gateway import GraphGateway

    return GraphGateway(options, context)


def _check(gateway: Any, mailbox: str | None) -> list[str]:
    from downsync.backends.graph.check import check

    return check(gateway, mailbox)


BACKEND = Backend(
    name="graph",
    summary="Microsoft Graph (Exchange Online, Microsoft 365)",
    options=GraphOptions,
    open=_open,
    check=_check,
)
