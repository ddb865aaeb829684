"""The deploy/ manifests, rendered with ``kubectl kustomize`` and checked for what matters.

What runs (``extender serve`` with a policy that loads), whether kube-scheduler would
accept its configuration (v1 strict decoding: only known keys), whether it can reach the
extender (urlPrefix vs. the Service or the sidecar's host, port and URL prefix), and the
operational promises: non-root and read-only, graceful shutdown that fits the grace
period, guaranteed memory, bootstrapping, and the two policy copies staying identical.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from werkzeug.serving import make_server

import extender
from extender import gunicorn_conf
from extender.policy import load_policy_text
from extender.settings import Settings
from extender.view import PodView
from extender.web import create_app
from extender.web.routes import VERBS
from tests.conftest import FIXTURES
from tests.test_dockerfile import load_image

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
FILTER_FIXTURE = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00001-filter-web-1.request.json"

EXTENDER_IMAGE = "ghcr.io/extender-dev/extender"
SECOND_SCHEDULER_NAME = "extender-scheduler"
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# kubescheduler.config.k8s.io/v1 (k8s.io/kube-scheduler config/v1/types.go). kube-scheduler
# decodes its --config strictly and case-sensitively: any other key fails start-up.
KUBE_SCHEDULER_CONFIGURATION_KEYS = {
    "apiVersion", "kind", "parallelism", "leaderElection", "clientConnection",
    "enableProfiling", "enableContentionProfiling",  # DebuggingConfiguration, inlined
    "percentageOfNodesToScore", "podInitialBackoffSeconds", "podMaxBackoffSeconds",
    "profiles", "extenders", "delayCacheUntilActive",
}  # fmt: skip
LEADER_ELECTION_KEYS = {
    "leaderElect", "leaseDuration", "renewDeadline", "retryPeriod",
    "resourceLock", "resourceName", "resourceNamespace",
}  # fmt: skip
CLIENT_CONNECTION_KEYS = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}
PROFILE_KEYS = {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"}
# protocol.md §3: the Extender type's JSON tags (identical from v1beta1 to v1).
EXTENDER_KEYS = {
    "urlPrefix", "filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb", "weight",
    "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources", "ignorable",
}  # fmt: skip
TLS_CONFIG_KEYS = {"insecure", "serverName", "certFile", "keyFile", "caFile", "certData", "keyData", "caData"}
MANAGED_RESOURCE_KEYS = {"name", "ignoredByScheduler"}
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


# -- rendering and lookups ---------------------------------------------------------------------


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(DEPLOY / name) for name in ("extender", "second-scheduler")}


def objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in objects(docs, kind)
        if d["metadata"]["name"] == name and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def workloads(rendered: Mapping[str, list[dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, docs in rendered.items():
        for deployment in objects(docs, "Deployment"):
            yield f"{name}/{deployment['metadata']['name']}", deployment


def extender_containers(
    rendered: Mapping[str, list[dict[str, Any]]],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]]:
    """(where, pod spec, container, the render's docs) for every container of the extender image."""
    for name, docs in rendered.items():
        for deployment in objects(docs, "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            for container in pod["containers"]:
                if container["image"].split(":")[0] == EXTENDER_IMAGE:
                    yield f"{name}/{deployment['metadata']['name']}/{container['name']}", pod, container, docs


def env_of(container: dict[str, Any]) -> dict[str, str]:
    env = {}
    for var in container.get("env", []):
        assert "valueFrom" not in var, f"{var['name']}: the test reads literal values only"
        env[var["name"]] = var["value"]
    return env


def image_env() -> dict[str, str]:
    return load_image().env({"PATH": "/usr/local/bin:/usr/bin:/bin"})


def settings_of(container: dict[str, Any]) -> Settings:
    """What ``extender serve`` would run with: image ENV, then the container's env."""
    return Settings.from_env({**image_env(), **env_of(container)})


def argv_of(container: dict[str, Any]) -> list[str]:
    """Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD); args replace CMD."""
    image = load_image()
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*image.entrypoint, *container.get("args", image.cmd)]


def mounted_file(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """(the pod volume, the key within it) that ``path`` in ``container`` reads."""
    target = PurePosixPath(path)
    for mount in container.get("volumeMounts", []):
        mount_path = PurePosixPath(mount["mountPath"])
        if "subPath" in mount:
            if target == mount_path:
                relative = mount["subPath"]
                break
        elif target.is_relative_to(mount_path) and target != mount_path:
            relative = str(target.relative_to(mount_path))
            break
    else:
        pytest.fail(f"{path} is not on any volume mounted into {container['name']}")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    items = (volume.get("configMap") or {}).get("items")
    if items:
        keys = [item["key"] for item in items if item["path"] == relative]
        assert keys, f"{path}: {relative} is not among the volume's items"
        return volume, keys[0]
    return volume, relative


def configmap_file(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any], path: str) -> str:
    volume, key = mounted_file(pod, container, path)
    assert "configMap" in volume, f"{path}: volume {volume['name']} is not a ConfigMap"
    name = volume["configMap"]["name"]
    configmaps = [c for c in objects(docs, "ConfigMap") if c["metadata"]["name"] == name]
    assert configmaps, f"{path}: ConfigMap {name} is not in the render (hash suffix not applied?)"
    data = configmaps[0].get("data", {})
    assert key in data, f"{path}: ConfigMap {name} has no key {key}"
    text: str = data[key]
    return text


def effective_security(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Container securityContext over the pod's (for the fields both have)."""
    inherited = ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile")
    merged = {k: v for k, v in pod.get("securityContext", {}).items() if k in inherited}
    merged.update(container.get("securityContext", {}))
    return merged


def prestop_seconds(container: dict[str, Any]) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop")
    if pre_stop is None:
        return 0
    if "sleep" in pre_stop:
        seconds: int = pre_stop["sleep"]["seconds"]
        return seconds
    command = pre_stop["exec"]["command"]
    if command[:2] == ["sh", "-c"] or command[:2] == ["/bin/sh", "-c"]:
        command = shlex.split(command[2])
    assert command[0] in ("sleep", "/bin/sleep") and len(command) == 2, f"unexpected preStop {command}"
    return int(command[1])


def quantity_bytes(value: str | int) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


# -- KubeSchedulerConfiguration checks ---------------------------------------------------------


def scheduler_config_problems(config: Any) -> list[str]:
    """What kube-scheduler's strict v1 decoding and validateExtenders would reject."""
    if not isinstance(config, dict):
        return ["not a mapping"]
    problems = []
    if config.get("apiVersion") != "kubescheduler.config.k8s.io/v1":
        problems.append(f"apiVersion {config.get('apiVersion')!r}")
    if config.get("kind") != "KubeSchedulerConfiguration":
        problems.append(f"kind {config.get('kind')!r}")

    def unknown(where: str, value: Any, allowed: set[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{where}: not a mapping")
            return
        problems.extend(f"{where}: unknown key {key!r}" for key in sorted(set(value) - allowed))

    unknown("(top level)", config, KUBE_SCHEDULER_CONFIGURATION_KEYS)
    if "leaderElection" in config:
        unknown("leaderElection", config["leaderElection"], LEADER_ELECTION_KEYS)
    if "clientConnection" in config:
        unknown("clientConnection", config["clientConnection"], CLIENT_CONNECTION_KEYS)
    for i, profile in enumerate(config.get("profiles") or []):
        unknown(f"profiles[{i}]", profile, PROFILE_KEYS)
    binders = 0
    for i, ext in enumerate(config.get("extenders") or []):
        where = f"extenders[{i}]"
        unknown(where, ext, EXTENDER_KEYS)
        if not isinstance(ext, dict):
            continue
        if not isinstance(ext.get("urlPrefix"), str) or not ext["urlPrefix"]:
            problems.append(f"{where}.urlPrefix: missing")
        for verb_key in ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb"):
            verb = ext.get(verb_key)
            if verb and verb not in VERBS:
                problems.append(f"{where}.{verb_key}: {verb!r} is not served (routes serve {VERBS})")
        if ext.get("prioritizeVerb") and not (isinstance(ext.get("weight"), int) and ext["weight"] > 0):
            problems.append(f"{where}.weight: must be a positive integer when prioritizeVerb is set")
        binders += bool(ext.get("bindVerb"))
        if "httpTimeout" in ext and not GO_DURATION.match(str(ext["httpTimeout"])):
            problems.append(f"{where}.httpTimeout: {ext['httpTimeout']!r} is not a duration")
        for flag in ("nodeCacheCapable", "ignorable", "enableHTTPS"):
            if flag in ext and not isinstance(ext[flag], bool):
                problems.append(f"{where}.{flag}: must be a boolean")
        if "tlsConfig" in ext:
            unknown(f"{where}.tlsConfig", ext["tlsConfig"], TLS_CONFIG_KEYS)
        for j, resource in enumerate(ext.get("managedResources") or []):
            unknown(f"{where}.managedResources[{j}]", resource, MANAGED_RESOURCE_KEYS)
    if binders > 1:
        problems.append("extenders: at most one may set bindVerb")
    return problems


def test_key_check_rejects_what_strict_decoding_rejects() -> None:
    # The checker itself: the classic mistakes fail it.
    bad = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [{"schedulerName": "x", "extenders": []}],
        "extenders": [{"urlPrefix": "http://x/scheduler", "prioritizeVerb": "prioritize", "enableHttps": True}],
    }
    problems = scheduler_config_problems(bad)
    assert "profiles[0]: unknown key 'extenders'" in problems
    assert "extenders[0]: unknown key 'enableHttps'" in problems
    assert any("weight" in p for p in problems)


def sidecar_config(rendered: Mapping[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the second scheduler's pod spec, its parsed --config file)."""
    docs = rendered["second-scheduler"]
    pod = one(docs, "Deployment", SECOND_SCHEDULER_NAME)["spec"]["template"]["spec"]
    scheduler = next(c for c in pod["containers"] if c["name"] == "kube-scheduler")
    argv = [*scheduler.get("command", []), *scheduler.get("args", [])]
    assert argv[0] == "kube-scheduler", argv
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    assert len(paths) == 1, f"kube-scheduler needs exactly one --config: {argv}"
    text = configmap_file(docs, pod, scheduler, paths[0])
    return pod, yaml.safe_load(text)


# -- what runs -----------------------------------------------------------------------------------


def test_both_kustomizations_render_and_run_the_extender(rendered: dict[str, list[dict[str, Any]]]) -> None:
    where = [w for w, *_ in extender_containers(rendered)]
    assert where == ["extender/extender/extender", "second-scheduler/extender-scheduler/extender"]


def test_every_extender_container_runs_extender_serve(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, _, container, _ in extender_containers(rendered):
        assert argv_of(container) == ["extender", "serve"], where
        assert settings_of(container).validate() == [], where


def test_image_tag_is_the_package_version(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, _, container, _ in extender_containers(rendered):
        assert container["image"] == f"{EXTENDER_IMAGE}:{extender.__version__}", where


def test_policy_mounted_at_EXTENDER_POLICY_validates(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, pod, container, docs in extender_containers(rendered):
        path = env_of(container).get("EXTENDER_POLICY")
        assert path, f"{where}: no EXTENDER_POLICY, it would serve the embedded default policy"
        volume, _ = mounted_file(pod, container, path)
        name = volume["configMap"]["name"]
        # kustomize's content hash: a policy edit renames the ConfigMap and so rolls the pods.
        assert re.fullmatch(r"extender-policy-[a-z0-9]{10}", name), f"{where}: {name} has no content hash"
        policy = load_policy_text(configmap_file(docs, pod, container, path), f"{where}:{path}")
        # The example exercises every built-in rule type, and shows a shadow-mode rollout.
        types = {r.rule.type_name for r in policy.predicates} | {r.rule.type_name for r in policy.priorities}
        assert types == {"node-condition", "node-maintenance", "node-selector-policy", "node-metadata", "node-cost"}
        modes = {r.mode for r in policy.predicates} | {r.mode for r in policy.priorities}
        assert "shadow" in modes, where


def test_the_two_policy_copies_are_identical() -> None:
    original = (DEPLOY / "extender" / "policy.yaml").read_bytes()
    copy = (DEPLOY / "second-scheduler" / "policy.yaml").read_bytes()
    assert copy == original, "deploy/second-scheduler/policy.yaml must be a copy of deploy/extender/policy.yaml"


def test_example_policy_filters_a_recorded_request() -> None:
    text = (DEPLOY / "extender" / "policy.yaml").read_text()
    app = create_app(Settings(), policy=load_policy_text(text))
    response = app.test_client().post(
        "/scheduler/filter", data=FILTER_FIXTURE.read_bytes(), content_type="application/json"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    reply = response.get_json()
    assert reply["Nodes"] is not None and not reply.get("Error")
    sent = json.loads(FILTER_FIXTURE.read_bytes())["Nodes"]["items"]
    kept = {n["metadata"]["name"] for n in reply["Nodes"]["items"]}
    rejected = set(reply.get("FailedNodes") or {}) | set(reply.get("FailedAndUnresolvableNodes") or {})
    # Every node is accounted for (protocol.md §2.5: list every node you reject).
    assert kept | rejected == {n["metadata"]["name"] for n in sent}
    # web-1 is in `default`, which no pool mapping covers: the exclusive gpu pool is off limits.
    gpu = {n["metadata"]["name"] for n in sent if n["metadata"]["labels"].get("node-pool") == "gpu"}
    assert gpu and kept and not kept & gpu, (kept, gpu)


def test_policy_scope_lets_the_extenders_own_pods_through(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # Bootstrapping: when the extender is up, it must never hold back its own replacements.
    policy = load_policy_text((DEPLOY / "extender" / "policy.yaml").read_text())
    for where, deployment in workloads(rendered):
        namespace = deployment["metadata"]["namespace"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert not policy.scope.matches(PodView("x", namespace, labels=labels)), where


# -- kube-scheduler configurations ------------------------------------------------------------------


def test_second_scheduler_config_is_strict_v1_and_points_at_the_sidecar(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    pod, config = sidecar_config(rendered)
    assert scheduler_config_problems(config) == []
    assert [p["schedulerName"] for p in config["profiles"]] == [SECOND_SCHEDULER_NAME]
    sidecar = next(c for c in pod["containers"] if c["image"].split(":")[0] == EXTENDER_IMAGE)
    settings = settings_of(sidecar)
    assert settings.host == "127.0.0.1", "the sidecar should listen on loopback only"
    (ext,) = config["extenders"]
    url = urlsplit(ext["urlPrefix"])
    assert (url.scheme, url.hostname, url.port) == ("http", "127.0.0.1", settings.port)
    assert url.path.rstrip("/") == settings.normalised_prefix
    assert (ext["filterVerb"], ext["prioritizeVerb"], ext["preemptVerb"]) == ("filter", "prioritize", "preempt")
    assert ext["weight"] > 0 and ext["nodeCacheCapable"] is False and "bindVerb" not in ext


def test_example_pod_uses_the_second_scheduler(rendered: dict[str, list[dict[str, Any]]]) -> None:
    _, config = sidecar_config(rendered)
    pod = yaml.safe_load((DEPLOY / "second-scheduler" / "example-pod.yaml").read_text())
    assert pod["kind"] == "Pod"
    assert pod["spec"]["schedulerName"] in {p["schedulerName"] for p in config["profiles"]}
    names = [d["metadata"]["name"] for d in rendered["second-scheduler"]]
    assert pod["metadata"]["name"] not in names, "example-pod.yaml must not be part of the kustomization"


def test_control_plane_scheduler_config_is_strict_v1_and_points_at_the_service(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    path = DEPLOY / "extender" / "scheduler-config.yaml"
    config = yaml.safe_load(path.read_text())
    assert scheduler_config_problems(config) == []
    kustomization = yaml.safe_load((DEPLOY / "extender" / "kustomization.yaml").read_text())
    assert "scheduler-config.yaml" not in kustomization["resources"], "a --config file, not an object"
    assert "scheduler-config.yaml" in (DEPLOY / "README.md").read_text()

    docs = rendered["extender"]
    (ext,) = config["extenders"]
    url = urlsplit(ext["urlPrefix"])
    service_name, namespace, *rest = (url.hostname or "").split(".")
    assert rest in (["svc"], ["svc", "cluster", "local"]), url.hostname
    service = one(docs, "Service", service_name, namespace)
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    deployment = one(docs, "Deployment", "extender", namespace)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), "the Service selects no extender pod"
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "extender")
    target = port["targetPort"]
    if isinstance(target, str):
        target = next(p["containerPort"] for p in container["ports"] if p["name"] == target)
    settings = settings_of(container)
    assert target == settings.port
    assert settings.host == "0.0.0.0", "the Service reaches the pod IP, not loopback"
    assert url.scheme == "http" and url.path.rstrip("/") == settings.normalised_prefix
    assert (ext["filterVerb"], ext["prioritizeVerb"], ext["preemptVerb"]) == ("filter", "prioritize", "preempt")
    assert ext["weight"] == 2 and ext["httpTimeout"] == "5s"
    assert ext["nodeCacheCapable"] is False and ext["ignorable"] is False


def test_second_scheduler_rbac(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["second-scheduler"]
    deployment = one(docs, "Deployment", SECOND_SCHEDULER_NAME)
    namespace = deployment["metadata"]["namespace"]
    pod = deployment["spec"]["template"]["spec"]
    account = pod["serviceAccountName"]
    one(docs, "ServiceAccount", account, namespace)
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}

    def bound(kind: str, role: str, binding_namespace: str | None = None) -> bool:
        return any(
            b["roleRef"]["name"] == role
            and subject in b["subjects"]
            and (binding_namespace is None or b["metadata"]["namespace"] == binding_namespace)
            for b in objects(docs, kind)
        )

    assert bound("ClusterRoleBinding", "system:kube-scheduler")
    assert bound("ClusterRoleBinding", "system:volume-scheduler")
    assert bound("RoleBinding", "extension-apiserver-authentication-reader", "kube-system")

    _, config = sidecar_config(rendered)
    election = config["leaderElection"]
    assert election["leaderElect"] is True
    lease, lease_namespace = election["resourceName"], election["resourceNamespace"]
    assert lease != "kube-scheduler", "the default scheduler's lease"
    granted: set[str] = set()
    for binding in objects(docs, "RoleBinding"):
        if binding["metadata"]["namespace"] != lease_namespace or subject not in binding["subjects"]:
            continue
        for rule in one(docs, "Role", binding["roleRef"]["name"], lease_namespace)["rules"]:
            if "coordination.k8s.io" not in rule["apiGroups"] or "leases" not in rule["resources"]:
                continue
            names = rule.get("resourceNames")
            if names is None:
                granted |= set(rule["verbs"])
            elif lease in names:
                # RBAC cannot authorise create by name: the object has no name to check yet.
                granted |= set(rule["verbs"]) - {"create"}
    assert {"get", "create", "update"} <= granted, granted


def test_second_scheduler_container(rendered: dict[str, list[dict[str, Any]]]) -> None:
    pod, _ = sidecar_config(rendered)
    scheduler = next(c for c in pod["containers"] if c["name"] == "kube-scheduler")
    assert scheduler["image"] == "registry.k8s.io/kube-scheduler:v1.30.6"
    probe = scheduler["livenessProbe"]["httpGet"]
    assert (probe["scheme"], probe["port"], probe["path"]) == ("HTTPS", 10259, "/healthz")
    # Only kube-scheduler talks to the API server; the extender sidecar gets no token.
    assert pod["automountServiceAccountToken"] is False
    mounts = {c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])] for c in pod["containers"]}
    assert SA_TOKEN_DIR in mounts["kube-scheduler"]
    assert SA_TOKEN_DIR not in mounts["extender"]


def test_schedulers_are_not_scheduled_by_themselves(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # protocol.md §3.2 bootstrapping caveat.
    for where, deployment in workloads(rendered):
        assert deployment["spec"]["template"]["spec"].get("schedulerName", "default-scheduler") != (
            SECOND_SCHEDULER_NAME
        ), where


# -- probes, shutdown, security, resources, availability ----------------------------------------------


def test_probes_reach_the_extender(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, _, container, _ in extender_containers(rendered):
        settings = settings_of(container)
        for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            probe = container[kind]
            assert probe["timeoutSeconds"] >= 2, f"{where} {kind}: python-stack.md §7.4"
            if "httpGet" in probe:
                # The kubelet probes the pod IP: the server must listen beyond loopback.
                assert settings.host == "0.0.0.0", f"{where}: httpGet probe on a loopback-bound server"
                port = probe["httpGet"]["port"]
                if isinstance(port, str):
                    port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
                assert (probe["httpGet"]["path"], port) == (path, settings.port), f"{where} {kind}"
            else:
                command = " ".join(probe["exec"]["command"])
                assert f"http://{settings.host}:{settings.port}{path}" in command, f"{where} {kind}"


def run_exec_probe(command: list[str], port: int) -> int:
    """Run an exec probe's command against ``port`` instead of its own."""
    assert command[0] == "python", command
    patched = [sys.executable, *(re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", a) for a in command[1:])]
    return subprocess.run(patched, capture_output=True, timeout=20, check=False).returncode


def test_exec_probes_pass_when_serving_and_fail_when_not(rendered: dict[str, list[dict[str, Any]]]) -> None:
    probes = [
        (where, kind, container[kind]["exec"]["command"])
        for where, _, container, _ in extender_containers(rendered)
        for kind in ("readinessProbe", "livenessProbe")
        if "exec" in container[kind]
    ]
    assert probes, "the loopback sidecar should use exec probes"
    ready = {"value": True}
    app = create_app(Settings(), readiness=lambda: (ready["value"], "test"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for where, kind, command in probes:
            assert run_exec_probe(command, server.server_port) == 0, f"{where} {kind}"
        ready["value"] = False
        readiness = [c for _, kind, c in probes if kind == "readinessProbe"]
        for command in readiness:
            assert run_exec_probe(command, server.server_port) != 0, "503 from /readyz must fail the probe"
    finally:
        server.shutdown()
        thread.join()
    for _, _, command in probes:
        with_nothing_listening = run_exec_probe(command, server.server_port)
        assert with_nothing_listening != 0


def test_grace_period_covers_prestop_and_gunicorn_graceful_timeout(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for where, pod, container, _ in extender_containers(rendered):
        sleep = prestop_seconds(container)
        assert sleep >= 1, f"{where}: no preStop sleep; new connections would hit a closed listener"
        grace = pod.get("terminationGracePeriodSeconds", 30)
        assert grace >= sleep + gunicorn_conf.graceful_timeout, f"{where}: {grace} < {sleep} + graceful_timeout"


def test_every_container_is_non_root_and_read_only(rendered: dict[str, list[dict[str, Any]]]) -> None:
    image_uid = int((load_image().user or "0").split(":")[0])
    for where, deployment in workloads(rendered):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            sc = effective_security(pod, container)
            name = f"{where}/{container['name']}"
            assert sc.get("runAsNonRoot") is True, name
            assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] != 0, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
            if container["image"].split(":")[0] == EXTENDER_IMAGE:
                assert sc["runAsUser"] == image_uid, f"{name}: runs as {sc['runAsUser']}, the image as {image_uid}"


def test_memory_limit_equals_request(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, deployment in workloads(rendered):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            request = resources.get("requests", {}).get("memory")
            limit = resources.get("limits", {}).get("memory")
            assert request and limit, f"{where}/{container['name']}: memory request and limit"
            assert quantity_bytes(request) == quantity_bytes(limit), f"{where}/{container['name']}"
            assert "cpu" in resources.get("requests", {}), f"{where}/{container['name']}"


def test_extender_service_is_highly_available(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["extender"]
    deployment = one(docs, "Deployment", "extender", "extender-system")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    spread = [
        c
        for c in pod.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname" and c["whenUnsatisfiable"] == "DoNotSchedule"
    ]
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    assert spread or anti, "replicas must not share a node"
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()
    assert pod["automountServiceAccountToken"] is False
    (pdb,) = [p for p in objects(docs, "PodDisruptionBudget")]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    service = one(docs, "Service", "extender", "extender-system")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [8888]
