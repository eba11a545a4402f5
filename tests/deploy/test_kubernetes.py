"""deploy/kubernetes renders (``kubectl kustomize``) into objects Kubernetes and KEDA accept, and into the layout
the service needs: one scheduler, workers without dispatch, probes on the API's health routes, real secrets only."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

from downsync.cli import main
from downsync.queue import QUEUE
from downsync.settings import DEV_SECRET_KEY, Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KEDA_CRD = KUBERNETES / "schemas" / "keda.sh_scaledobjects.yaml"
# The oldest Kubernetes the manifests promise to fit (PodDisruptionBudget policy/v1, Job TTLs and the restricted
# Pod Security labels are all older) and the newest the installed kubernetes-validate knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
FILLED_SECRETS = {
    "DOWNSYNC_SECRET_KEY": "a-real-secret-key-of-forty-eight-characters-xxxxx",
    "DOWNSYNC_DATABASE_URL": "postgresql+psycopg://downsync:pw@db.internal:5432/downsync",
    "DOWNSYNC_REDIS_URL": "redis://:pw@redis.internal:6379/0",
    "DOWNSYNC_SENTRY_DSN": "https://key@sentry.example.com/1",
    "KEDA_REDIS_ADDRESS": "redis.internal:6379",
    "KEDA_REDIS_PASSWORD": "pw",
    "FLOWER_BASIC_AUTH": "ops:flower-password",
}

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: `kubectl kustomize` renders the manifests"
)


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)


def render(tmp_path: Path, secrets: dict[str, str] | None = FILLED_SECRETS) -> list[dict[str, Any]]:
    """The production overlay as an operator renders it, with secrets.env filled (or absent)."""
    copied = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copied, ignore=shutil.ignore_patterns("secrets.env"))
    if secrets is not None:
        lines = [f"{key}={value}" for key, value in secrets.items()]
        (copied / "overlays" / "production" / "secrets.env").write_text("\n".join(lines) + "\n")
    rendered = kustomize(copied / "overlays" / "production")
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def strict(schema: Any) -> Any:
    """The CRD's schema as the API server applies it with strict field validation: an object with declared
    properties takes no others (KEDA's CRD says nothing, and Kubernetes prunes or, strictly, refuses them)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def keda_schema() -> dict[str, Any]:
    crd = next(doc for doc in yaml.safe_load_all(KEDA_CRD.read_text()) if doc)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return strict(version["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` renders the manifests")
    return render(tmp_path_factory.mktemp("production"))


@needs_kubectl
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(rendered: list[dict[str, Any]], version: str) -> None:
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Job",
        "Namespace",
        "PodDisruptionBudget",
        "ScaledObject",
        "Secret",
        "Service",
    ]
    for obj in rendered:
        if obj["kind"] == "ScaledObject":
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is not valid for Kubernetes {version}: {error}")


@needs_kubectl
def test_the_scaled_object_is_valid_for_keda_and_scales_the_workers_on_the_queue(
    rendered: list[dict[str, Any]],
) -> None:
    (scaled,) = by_kind(rendered, "ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    jsonschema.validate(scaled, keda_schema())
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "downsync-worker"}
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == QUEUE
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    # The scaler reads these from the scaled Deployment's environment: they must be there.
    worker = by_kind(rendered, "Deployment")["downsync-worker"]
    secret = by_kind(rendered, "Secret")["downsync-secrets"]
    assert {"secretRef": {"name": "downsync-secrets"}} in containers(worker)[0]["envFrom"]
    assert {trigger["metadata"]["addressFromEnv"], trigger["metadata"]["passwordFromEnv"]} <= set(secret["data"])
    # KEDA owns the replica count: a replicas field would reset it at every apply.
    assert "replicas" not in worker["spec"]


def test_the_vendored_keda_schema_refuses_a_broken_scaled_object() -> None:
    """The schema check can fail: a trigger without metadata, an unknown field."""
    good = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [{"type": "redis", "metadata": {"listName": "q"}}]},
    }
    jsonschema.validate(good, keda_schema())
    for broken in (
        {**good, "spec": {**good["spec"], "triggers": [{"type": "redis"}]}},
        {**good, "spec": {**good["spec"], "maxReplicas": 3}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, keda_schema())


@needs_kubectl
def test_one_scheduler_and_workers_that_leave_dispatch_to_it(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == {"downsync-api", "downsync-worker", "downsync-scheduler", "downsync-flower"}
    scheduler = deployments["downsync-scheduler"]
    assert scheduler["spec"]["replicas"] == 1 and scheduler["spec"]["strategy"] == {"type": "Recreate"}
    assert containers(scheduler)[0]["command"] == ["downsync", "scheduler"]
    worker = containers(deployments["downsync-worker"])[0]
    assert worker["command"][:3] == ["downsync", "worker", "--no-dispatch"]
    for name in ("downsync-worker", "downsync-scheduler"):
        (port,) = containers(deployments[name])[0]["ports"]
        assert port["containerPort"] == 9808
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == "9808"
    flower = containers(deployments["downsync-flower"])[0]
    assert flower["command"][:4] == ["celery", "-A", "worker.celery_app", "flower"]
    assert "downsync-flower" in by_kind(rendered, "Service")


@needs_kubectl
def test_the_api_is_probed_on_its_health_routes_and_served(rendered: list[dict[str, Any]]) -> None:
    api = by_kind(rendered, "Deployment")["downsync-api"]
    assert api["spec"]["replicas"] == 3  # the production overlay's
    (container,) = containers(api)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    service = by_kind(rendered, "Service")["downsync-api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    budgets = by_kind(rendered, "PodDisruptionBudget")
    assert budgets["downsync-api"]["spec"]["selector"] == api["spec"]["selector"]
    assert budgets["downsync-api"]["spec"]["minAvailable"] == 1
    job = by_kind(rendered, "Job")["downsync-migrate"]
    assert containers(job)[0]["command"] == ["downsync", "db", "upgrade"]


@needs_kubectl
def test_every_command_is_one_the_cli_accepts(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        command = containers(obj)[0]["command"]
        if command[0] != "downsync":
            continue
        context = main.make_context("downsync", list(command[1:]), resilient_parsing=False)
        name, sub, rest = main.resolve_command(context, context.protected_args + context.args)
        assert sub is not None
        if isinstance(sub, click.Group):
            name, sub, rest = sub.resolve_command(context, rest)
        sub.make_context(name, rest, parent=context)


@needs_kubectl
def test_every_pod_has_requests_and_limits_and_runs_unprivileged(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            where = f"{obj['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["image"] == "registry.example.com/downsync:0.1.0", where


@needs_kubectl
def test_settings_are_downsyncs_and_secrets_are_the_operators(rendered: list[dict[str, Any]]) -> None:
    (config,) = by_kind(rendered, "ConfigMap").values()
    known = {f"DOWNSYNC_{name.upper()}" for name in Settings.model_fields}
    assert set(config["data"]) <= known, set(config["data"]) - known  # a misspelt setting is silently ignored
    assert config["data"]["DOWNSYNC_ENVIRONMENT"] == "production"
    secret = by_kind(rendered, "Secret")["downsync-secrets"]
    assert {k for k in secret.get("data", {}) if k.startswith("DOWNSYNC_")} <= known
    assert set(secret["data"]) == set(FILLED_SECRETS)
    assert "stringData" not in secret  # nothing of the base's placeholders is merged in
    text = yaml.safe_dump_all(rendered)
    assert "change-me" not in text and DEV_SECRET_KEY not in text


@needs_kubectl
def test_the_production_overlay_refuses_to_render_without_real_secrets(tmp_path: Path) -> None:
    copied = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copied, ignore=shutil.ignore_patterns("secrets.env"))
    failed = kustomize(copied / "overlays" / "production")
    assert failed.returncode != 0 and "secrets.env" in failed.stderr


@needs_kubectl
def test_the_base_renders_and_its_placeholder_key_is_refused_in_production(tmp_path: Path) -> None:
    """Applied without the overlay, the base's Secret holds the development key, which production refuses."""
    base = kustomize(KUBERNETES / "base")
    assert base.returncode == 0, base.stderr
    objects = [doc for doc in yaml.safe_load_all(base.stdout) if doc]
    for obj in objects:
        if obj["kind"] != "ScaledObject":
            kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)
    secret = by_kind(objects, "Secret")["downsync-secrets"]["stringData"]
    with pytest.raises(ValueError, match="DOWNSYNC_SECRET_KEY"):
        Settings(environment="production", secret_key=secret["DOWNSYNC_SECRET_KEY"])


@needs_kubectl
def test_pods_run_as_the_images_user(rendered: list[dict[str, Any]]) -> None:
    """runAsNonRoot needs a numeric user; it must be the image's, which owns /var/lib/downsync."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    uid = int(dockerfile.split("useradd", 1)[1].split("--uid", 1)[1].split()[0])
    for obj in rendered:
        if obj["kind"] in ("Deployment", "Job"):
            assert obj["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid, obj["metadata"]["name"]


@needs_kubectl
def test_what_is_applied_first_is_what_the_migration_needs(rendered: list[dict[str, Any]]) -> None:
    """README's order: `kubectl apply -k ... -l downsync-apply=first` (namespace, settings, secrets, the migration),
    wait for the Job, then everything."""
    first = {o["kind"] for o in rendered if o["metadata"].get("labels", {}).get("downsync-apply") == "first"}
    assert first == {"Namespace", "ConfigMap", "Secret", "Job"}
