"""The simulator's Entra ID through the real msal over HTTPS: discovery, secrets, certificates, token expiry."""

from __future__ import annotations

import time

import httpx
import jwt
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ews_sim.graph.directory import tenant_id
from ews_sim.testing import (
    CERT_APP_CERTIFICATE,
    CERT_APP_ID,
    CERT_APP_KEY,
    GRAPH_APP_ID,
    GRAPH_APP_SECRET,
    GRAPH_SCOPE,
    GRAPH_TENANT,
    SimClient,
    graph_client,
)
from ews_sim.tls import self_signed_rsa
from tests.ews_sim.graph.support import ALICE, error


def token_call(sim: SimClient, tenant: str = GRAPH_TENANT, **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "scope": GRAPH_SCOPE, **form}
    return httpx.post(f"{sim.tls_url}/{tenant}/oauth2/v2.0/token", data=data, verify=sim.verify)


def claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def test_msal_gets_a_token_with_a_secret_and_graph_accepts_it(sim: SimClient) -> None:
    result = sim.msal_app().acquire_token_for_client(scopes=[GRAPH_SCOPE])

    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600
    found = claims(result["access_token"])
    assert found["tid"] == tenant_id(GRAPH_TENANT) and found["appid"] == GRAPH_APP_ID
    assert found["roles"] == ["Calendars.ReadWrite"] and found["aud"] == "https://graph.microsoft.com"
    assert found["exp"] - found["iat"] == 3600 and found["appidacr"] == "1"
    with graph_client(sim.running, result["access_token"]) as graph:
        assert graph.get(f"/users/{ALICE}/events").status_code == 200
    [entry] = [e for e in sim.log() if e["operation"] == "graph.token"]
    assert (entry["account"], entry["httpStatus"], entry["responseCode"]) == (GRAPH_APP_ID, 200, "NoError")


def test_discovery_names_the_token_endpoint_on_the_simulators_own_scheme_host_and_port(sim: SimClient) -> None:
    for base, verify in ((sim.tls_url, sim.verify), (sim.url, True)):
        document = httpx.get(f"{base}/{GRAPH_TENANT}/v2.0/.well-known/openid-configuration", verify=verify).json()
        assert document["token_endpoint"] == f"{base}/{tenant_id(GRAPH_TENANT)}/oauth2/v2.0/token"
        assert document["issuer"] == f"{base}/{tenant_id(GRAPH_TENANT)}/v2.0"
    # The tenant's GUID names it as well as its domain.
    by_id = httpx.get(
        f"{sim.tls_url}/{tenant_id(GRAPH_TENANT)}/v2.0/.well-known/openid-configuration", verify=sim.verify
    )
    assert by_id.status_code == 200


def test_msal_verify_argument_trusts_the_ca_file(sim: SimClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these variables override a session's verify=, so msal's own argument needs them unset.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    app = msal.ConfidentialClientApplication(
        GRAPH_APP_ID,
        client_credential=GRAPH_APP_SECRET,
        authority=f"{sim.tls_url}/{GRAPH_TENANT}",
        instance_discovery=False,
        verify=str(sim.ca_file),
    )
    assert "access_token" in app.acquire_token_for_client(scopes=[GRAPH_SCOPE])


def test_a_wrong_secret_is_invalid_client_7000215(sim: SimClient) -> None:
    result = sim.msal_app(credential="not-the-secret").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")

    raw = token_call(sim, client_id=GRAPH_APP_ID, client_secret="not-the-secret")
    assert raw.status_code == 401 and raw.json()["error"] == "invalid_client"
    assert sim.log()[-1]["responseCode"] == "invalid_client" and sim.log()[-1]["httpStatus"] == 401


def test_an_unknown_client_id_is_unauthorized_client_700016(sim: SimClient) -> None:
    raw = token_call(sim, client_id="99999999-0000-0000-0000-000000000000", client_secret="x")
    assert raw.status_code == 400
    assert raw.json()["error"] == "unauthorized_client" and raw.json()["error_codes"] == [700016]
    result = sim.msal_app(client_id="nobody").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "unauthorized_client"


def test_an_unknown_tenant_is_invalid_request_90002(sim: SimClient) -> None:
    raw = token_call(sim, tenant="northwind.example", client_id=GRAPH_APP_ID, client_secret=GRAPH_APP_SECRET)
    assert raw.status_code == 400
    assert raw.json()["error"] == "invalid_request" and raw.json()["error_codes"] == [90002]
    # msal learns it from the discovery document first.
    with pytest.raises(ValueError, match="double check your tenant name"):
        sim.msal_app(tenant="northwind.example")


@pytest.mark.parametrize(
    ("credential", "algorithm"),
    [
        ({"private_key": CERT_APP_KEY, "public_certificate": CERT_APP_CERTIFICATE}, "PS256"),
        (
            {
                "private_key": CERT_APP_KEY,
                "thumbprint": x509.load_pem_x509_certificate(CERT_APP_CERTIFICATE.encode())
                .fingerprint(hashes.SHA1())
                .hex(),
            },
            "RS256",
        ),
    ],
)
def test_a_certificate_assertion_signed_by_the_registered_certificate_gets_a_token(
    sim: SimClient, credential: dict[str, str], algorithm: str
) -> None:
    result = sim.msal_app(CERT_APP_ID, credential).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    assert claims(result["access_token"])["appidacr"] == "2" and claims(result["access_token"])["appid"] == CERT_APP_ID
    with graph_client(sim.running, result["access_token"]) as graph:
        assert graph.get(f"/users/{ALICE}/calendar").status_code == 200
    del algorithm  # msal picks PS256 when it can compute the SHA-256 thumbprint, RS256 from a SHA-1 one


def test_an_assertion_signed_by_another_certificate_is_refused(sim: SimClient) -> None:
    key, certificate = self_signed_rsa("impostor")
    credential = {"private_key": key, "public_certificate": certificate}
    result = sim.msal_app(CERT_APP_ID, credential).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]

    # Right thumbprint, wrong key: the signature does not verify.
    thumbprint = x509.load_pem_x509_certificate(CERT_APP_CERTIFICATE.encode()).fingerprint(hashes.SHA1()).hex()
    forged = sim.msal_app(CERT_APP_ID, {"private_key": key, "thumbprint": thumbprint})
    result = forged.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and "signature validation" in result["error_description"]


def test_an_assertion_must_be_issued_by_the_client_and_for_this_token_endpoint(sim: SimClient) -> None:
    cert = x509.load_pem_x509_certificate(CERT_APP_CERTIFICATE.encode())
    x5t = jwt.utils.base64url_encode(cert.fingerprint(hashes.SHA1())).decode()
    endpoint = f"{sim.tls_url}/{GRAPH_TENANT}/oauth2/v2.0/token"
    now = int(time.time())

    def assertion(**changes: object) -> str:
        payload = {"aud": endpoint, "iss": CERT_APP_ID, "sub": CERT_APP_ID, "exp": now + 300, "iat": now, "jti": "1"}
        payload.update(changes)
        return jwt.encode(payload, CERT_APP_KEY, algorithm="RS256", headers={"x5t": x5t})

    def call(token: str) -> httpx.Response:
        return token_call(
            sim,
            client_id=CERT_APP_ID,
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=token,
        )

    assert call(assertion()).status_code == 200
    assert call(assertion(iss="someone-else", sub="someone-else")).json()["error_codes"] == [700021]
    assert call(assertion(aud="https://login.example/elsewhere/token")).json()["error_codes"] == [700027]
    assert call(assertion(exp=now - 60)).json()["error_codes"] == [700024]
    assert call("not-a-jwt").status_code == 401


def test_the_scope_must_be_the_graph_resource_with_default(sim: SimClient) -> None:
    assert token_call(sim, client_id=GRAPH_APP_ID, client_secret=GRAPH_APP_SECRET).status_code == 200
    own = token_call(sim, client_id=GRAPH_APP_ID, client_secret=GRAPH_APP_SECRET, scope=f"{sim.tls_url}/.default")
    assert own.status_code == 200
    bad = token_call(sim, client_id=GRAPH_APP_ID, client_secret=GRAPH_APP_SECRET, scope="Calendars.ReadWrite")
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_scope")
    other = token_call(
        sim, client_id=GRAPH_APP_ID, client_secret=GRAPH_APP_SECRET, scope="https://vault.example/.default"
    )
    assert (other.status_code, other.json()["error"]) == (400, "invalid_resource")
    grant = token_call(sim, client_id=GRAPH_APP_ID, client_secret=GRAPH_APP_SECRET, grant_type="password")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")


def test_a_shortened_token_lifetime_makes_graph_refuse_the_expired_token(sim: SimClient) -> None:
    assert sim.limits(token_lifetime_seconds=0)["tokenLifetimeSeconds"] == 0
    token = sim.graph_token()
    assert claims(token)["exp"] == claims(token)["iat"]  # expired the moment it was issued
    with graph_client(sim.running, token) as graph:
        response = graph.get(f"/users/{ALICE}/events")
    assert error(response) == (401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    # A reset restores the configured lifetime.
    sim.reset()
    assert sim.limits()["tokenLifetimeSeconds"] == 3600


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer", "Access token is empty."),
        ("Basic c3ZjOnMzY3JldA==", "Access token is empty."),
        ("Bearer not.a.token", "Access token validation failure."),
        (
            "Bearer "
            + jwt.encode(
                {
                    "aud": "https://graph.microsoft.com",
                    "tid": "t",
                    "appid": GRAPH_APP_ID,
                    "exp": int(time.time()) + 600,
                },
                "another-simulators-key-of-32-bytes!!",
                algorithm="HS256",
            ),
            "Access token validation failure.",
        ),
    ],
)
def test_graph_refuses_missing_and_forged_tokens(sim: SimClient, authorization: str | None, message: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{sim.tls_url}/v1.0/users/{ALICE}/events", headers=headers, verify=sim.verify)
    assert error(response) == (401, "InvalidAuthenticationToken", message)
    assert sim.log()[-1]["responseCode"] == "InvalidAuthenticationToken"
