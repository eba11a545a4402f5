"""App-only tokens for Graph from msal (client credentials), cached by msal until shortly before they expire."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from downsync.backends.graph import PUBLIC_AUTHORITY, GraphOptions, certificate_thumbprint
from downsync.core.errors import PermanentError, TransientError

# Hosts msal knows; for any other (a national cloud's or the simulator's) it must not ask Microsoft's instance
# discovery, which the authority's own host cannot answer.
KNOWN_AUTHORITIES = {
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
    "login.microsoftonline.de",
}


def scope(graph_url: str) -> str:
    """``https://graph.microsoft.com/.default``: the app's consented application permissions for that Graph."""
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


class TokenSource:
    def __init__(self, options: GraphOptions, ca_file: str | None, timeout: float) -> None:
        credential: Any
        if options.certificate is not None:
            pem = options.certificate.get_secret_value()
            credential = {"private_key": pem, "thumbprint": certificate_thumbprint(pem)}
        else:
            assert options.client_secret is not None
            credential = options.client_secret.get_secret_value()
        session = requests.Session()
        if ca_file:
            session.verify = ca_file
            # requests lets REQUESTS_CA_BUNDLE override a session's own CA file; the tenant's setting wins here.
            session.trust_env = False
        host = urlsplit(options.authority).hostname or ""
        self.app = msal.ConfidentialClientApplication(
            options.client_id,
            client_credential=credential,
            authority=f"{options.authority}/{options.azure_tenant}",
            http_client=session,
            timeout=timeout,
            instance_discovery=host in KNOWN_AUTHORITIES or options.authority == PUBLIC_AUTHORITY,
        )
        self.scopes = [scope(options.graph_url)]
        self._lock = threading.Lock()

    def token(self, fresh: bool = False) -> str:
        """A valid access token; ``fresh`` drops the cached one first (Graph refused it)."""
        with self._lock:
            if fresh:
                self.app.remove_tokens_for_client()
            try:
                result = self.app.acquire_token_for_client(scopes=self.scopes)
            except (requests.RequestException, ValueError) as exc:
                # ValueError: msal could not read the authority's discovery document (unknown tenant, wrong host).
                raise TransientError(
                    "ErrorConnectionFailed", f"the Entra token endpoint did not answer: {exc}"
                ) from exc
        if "access_token" in result:
            return str(result["access_token"])
        raise token_error(result)


def token_error(result: dict[str, Any]) -> Exception:
    """Entra's refusal, in words an operator can act on."""
    error = str(result.get("error", "unknown"))
    description = str(result.get("error_description", "")).split("\r\n")[0][:300]
    if error in ("temporarily_unavailable", "server_error"):
        return TransientError("ErrorServerBusy", f"Entra is unavailable: {description}")
    hint = {
        "invalid_client": "the client secret or certificate is wrong or expired",
        "unauthorized_client": "no app with this client id in the tenant",
        "invalid_request": "the Entra tenant is wrong",
        "invalid_scope": "the Graph URL does not name a resource the app may ask for",
    }.get(error, "Entra refused the app")
    return PermanentError("ErrorAccessDenied", f"{hint} ({error}: {description})")
