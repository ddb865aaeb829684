"""The deploy/ manifests, rendered with ``kubectl kustomize`` and checked for what matters.

What runs (``extender serve`` with a policy that loads), whether kube-scheduler would
accept its configuration (v1 strict decoding: only known keys), whether it can reach the
extender (urlPrefix vs. the Service or the sidecar's host, port and URL prefix), and the
operational promises: non-root and read-only, graceful shutdown that fits the grace
period, guaranteed memory, bootstrapping, and the two policy copies staying identical.

Least privilege: the features the extender runs with (node cache, pod cache, bind; read from
its environment and its mounted policy) decide which RBAC rules its identity must hold, no
more (deploy/components/*, deploy/node-cache), and whether it gets a ServiceAccount token.
"""

from __future__ import annotations

import difflib
import json
import os
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
from extender import gunicorn_conf, schedconfig
from extender.policy import load_policy_text
from extender.schedconfig import KubeVersion
from extender.schedconfig.validate import GO_DURATION
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

# The kube-scheduler release deploy/second-scheduler pins (registry.k8s.io/kube-scheduler:v1.30.6):
# the hand-written configs are checked as that release decodes and validates them.
KUBE_SCHEDULER_VERSION = KubeVersion(30)
GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# What each extender feature calls on the API server, as RBAC: (apiGroup, resource) -> verbs.
# node cache: list+watch /api/v1/nodes (never get); pod cache: list+watch /api/v1/pods with a
# field selector (never get); bind: create pods/<name>/binding, get the pod after a 409.
# tests/kube/test_rbac_observed.py checks this against the calls the code really makes.
FEATURE_RBAC: dict[str, dict[tuple[str, str], set[str]]] = {
    "node-cache": {("", "nodes"): {"list", "watch"}},
    "pod-cache": {("", "pods"): {"list", "watch"}},
    "bind": {("", "pods/binding"): {"create"}, ("", "pods"): {"get"}},
    "preempt-node-lookup": {("", "nodes"): {"get"}},
    # a metrics-server source: one list of NodeMetrics per refresh
    "metrics-server-source": {("metrics.k8s.io", "nodes"): {"list"}},
    # --events: one Event posted per pod decision (rate-limited), never read or updated
    "events": {("events.k8s.io", "events"): {"create"}},
}
# What each component under deploy/components sets on the extender container.
COMPONENT_ENV = {
    "node-cache": {"EXTENDER_NODE_CACHE": "true"},
    "pod-cache": {"EXTENDER_POD_CACHE": "true"},
    "bind": {"EXTENDER_BIND_TIMEOUT": "3"},  # bind itself is switched on by the policy
    "preempt-node-lookup": {"EXTENDER_PREEMPT_NODE_LOOKUP": "true"},
    "metrics-server-source": {},  # the source itself is declared in the policy
    "events": {"EXTENDER_EVENTS": "true"},
}
# Built-in roles bound in deploy/, which no render contains. Excerpts of the bootstrap policy
# (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, K1.30): only the rules an
# extender could use, so what they grant is a lower bound.
BUILTIN_ROLE_EXCERPTS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("ClusterRole", "system:kube-scheduler"): [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/binding", "bindings"], "verbs": ["create"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ],
    ("ClusterRole", "system:volume-scheduler"): [],  # persistentvolumes, claims, storageclasses
    ("Role", "extension-apiserver-authentication-reader"): [],  # one ConfigMap in kube-system
}


# -- rendering and lookups ---------------------------------------------------------------------


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(DEPLOY / name) for name in ("extender", "second-scheduler", "node-cache")}


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


def go_duration_seconds(value: str) -> float:
    assert GO_DURATION.match(value), value
    return sum(float(n) * GO_DURATION_UNITS[unit] for n, unit in GO_DURATION_PART.findall(value))


def mounted_policy(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]) -> Any:
    """The policy the container loads at EXTENDER_POLICY, parsed."""
    path = env_of(container)["EXTENDER_POLICY"]
    return load_policy_text(configmap_file(docs, pod, container, path), path)


def features_of(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """The API-using features this extender container runs with (FEATURE_RBAC's keys)."""
    settings = settings_of(container)
    enabled = {
        "node-cache": settings.node_cache,
        "pod-cache": settings.pod_cache,
        "preempt-node-lookup": settings.preempt_node_lookup,
        "events": settings.events,
    }
    policy = mounted_policy(docs, pod, container)
    enabled["bind"] = policy.bind_enabled
    enabled["metrics-server-source"] = any(spec.type == "metrics-server" for spec in policy.sources.values())
    return {name for name, on in enabled.items() if on}


def needed_rbac(features: set[str]) -> dict[tuple[str, str], set[str]]:
    needed: dict[tuple[str, str], set[str]] = {}
    for feature in features:
        for key, verbs in FEATURE_RBAC[feature].items():
            needed.setdefault(key, set()).update(verbs)
    return needed


def service_account_of(deployment: dict[str, Any]) -> dict[str, str]:
    """The RBAC subject the deployment's pods run as."""
    pod = deployment["spec"]["template"]["spec"]
    namespace = deployment["metadata"]["namespace"]
    return {"kind": "ServiceAccount", "name": pod.get("serviceAccountName", "default"), "namespace": namespace}


def binds(binding: dict[str, Any], subject: dict[str, str]) -> bool:
    """Whether the (Cluster)RoleBinding applies to the ServiceAccount ``subject``."""
    groups = {"system:serviceaccounts", f"system:serviceaccounts:{subject['namespace']}"}
    for s in binding.get("subjects") or []:
        if s["kind"] == "ServiceAccount" and (s["name"], s.get("namespace")) == (subject["name"], subject["namespace"]):
            return True
        if s["kind"] == "Group" and s["name"] in groups | {"system:authenticated"}:
            return True
    return False


def rbac_grants(docs: list[dict[str, Any]], subject: dict[str, str]) -> dict[tuple[str, str], set[str]]:
    """Union of verbs per (apiGroup, resource) over every role bound to ``subject``.

    A grant that is narrower than cluster-wide shows in the resource:
    ``leases[extender-scheduler]`` (resourceNames), ``pods in kube-system`` (a RoleBinding).
    Roles the render does not contain must be in BUILTIN_ROLE_EXCERPTS.
    """
    granted: dict[tuple[str, str], set[str]] = {}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in objects(docs, kind):
            if not binds(binding, subject):
                continue
            ref = binding["roleRef"]
            role_namespace = binding["metadata"]["namespace"] if ref["kind"] == "Role" else None
            found = [
                r
                for r in objects(docs, ref["kind"])
                if r["metadata"]["name"] == ref["name"] and r["metadata"].get("namespace") == role_namespace
            ]
            if found:
                rules = found[0].get("rules") or []
            elif (ref["kind"], ref["name"]) in BUILTIN_ROLE_EXCERPTS:
                rules = BUILTIN_ROLE_EXCERPTS[(ref["kind"], ref["name"])]
            else:
                pytest.fail(f"{kind} {binding['metadata']['name']}: {ref['kind']} {ref['name']} is not defined")
            for rule in rules:
                assert not rule.get("nonResourceURLs"), f"{ref['name']}: nonResourceURLs"
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        if rule.get("resourceNames"):
                            resource += "[" + ",".join(sorted(rule["resourceNames"])) + "]"
                        if kind == "RoleBinding":
                            resource += f" in {binding['metadata']['namespace']}"
                        granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def has_api_token(docs: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]) -> bool:
    """Whether the container gets a ServiceAccount token (and the CA) at SA_TOKEN_DIR."""
    automount = pod.get("automountServiceAccountToken")
    if automount is None:
        namespace = next(
            d["metadata"]["namespace"]
            for d in objects(docs, "Deployment")
            if d["spec"]["template"]["spec"] is pod
        )
        account = one(docs, "ServiceAccount", pod.get("serviceAccountName", "default"), namespace)
        automount = account.get("automountServiceAccountToken", True)
    if automount:
        return True  # the ServiceAccount admission plugin mounts it into every container
    if not any(m["mountPath"] == SA_TOKEN_DIR for m in container.get("volumeMounts", [])):
        return False
    # Mounted by hand: it must be what the admission plugin would have mounted.
    token_volume, token_key = mounted_file(pod, container, f"{SA_TOKEN_DIR}/token")
    _, ca_key = mounted_file(pod, container, f"{SA_TOKEN_DIR}/ca.crt")
    sources = token_volume.get("projected", {}).get("sources", [])
    assert any(s.get("serviceAccountToken", {}).get("path") == token_key for s in sources), token_volume
    assert any(
        s.get("configMap", {}).get("name") == "kube-root-ca.crt"
        and any(i["path"] == ca_key for i in s["configMap"].get("items", []))
        for s in sources
    ), token_volume
    return True


def render_overlay(directory: Path, resources: list[Path], components: list[Path]) -> list[dict[str, Any]]:
    """Render a throw-away kustomization in ``directory`` (anywhere: kustomize accepts relative
    paths to other kustomization directories from outside them)."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(r, directory) for r in resources],
        "components": [os.path.relpath(c, directory) for c in components],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render(directory)


def uncommented_block(text: str, first_line: str) -> Any:
    """The YAML commented out in ``text`` starting at the comment line ``first_line``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"# {first_line}")
    indent = lines[start].index("#")
    block = []
    for line in lines[start:]:
        if not line.strip().startswith("#") or line.index("#") != indent:
            break
        block.append(line[indent + 2 :])
    return yaml.safe_load("\n".join(block))


# -- KubeSchedulerConfiguration checks ---------------------------------------------------------


def scheduler_config_problems(config: Any, version: KubeVersion = KUBE_SCHEDULER_VERSION) -> list[str]:
    """What kube-scheduler ``version`` would refuse (extender.schedconfig's checker: strict
    decoding and the validation rules), plus verbs this extender does not serve."""
    problems = schedconfig.problems(config, version)
    extenders = config.get("extenders") if isinstance(config, dict) else None
    for i, ext in enumerate(extenders if isinstance(extenders, list) else []):
        for verb_key in ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb"):
            verb = ext.get(verb_key) if isinstance(ext, dict) else None
            if verb and verb not in VERBS:
                problems.append(f"extenders[{i}].{verb_key}: {verb!r} is not served (routes serve {VERBS})")
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


def service_backend(docs: list[dict[str, Any]], url_prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, extender container) behind the Service that ``url_prefix`` names, checking
    that the Service selects those pods and its port leads to the extender's."""
    url = urlsplit(url_prefix)
    service_name, namespace, *rest = (url.hostname or "").split(".")
    assert rest in (["svc"], ["svc", "cluster", "local"]), url.hostname
    service = one(docs, "Service", service_name, namespace)
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    deployment = one(docs, "Deployment", "extender", namespace)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), "the Service selects no extender pod"
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "extender")
    target = port["targetPort"]
    if isinstance(target, str):
        target = next(p["containerPort"] for p in container["ports"] if p["name"] == target)
    settings = settings_of(container)
    assert target == settings.port
    assert settings.host == "0.0.0.0", "the Service reaches the pod IP, not loopback"
    assert url.scheme == "http" and url.path.rstrip("/") == settings.normalised_prefix
    return pod, container


def scheduler_configs(
    rendered: Mapping[str, list[dict[str, Any]]],
) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any]]]:
    """(name, parsed config, the render, pod spec, extender container) for every scheduler config
    that deploy/ ships, with the extender it reaches."""
    for name in ("extender", "node-cache"):
        config = yaml.safe_load((DEPLOY / name / "scheduler-config.yaml").read_text())
        (ext,) = config["extenders"]
        pod, container = service_backend(rendered[name], ext["urlPrefix"])
        yield f"{name}/scheduler-config.yaml", config, rendered[name], pod, container
    pod, config = sidecar_config(rendered)
    sidecar = next(c for c in pod["containers"] if c["image"].split(":")[0] == EXTENDER_IMAGE)
    yield "second-scheduler/scheduler-config.yaml", config, rendered["second-scheduler"], pod, sidecar


# -- what runs -----------------------------------------------------------------------------------


def test_both_kustomizations_render_and_run_the_extender(rendered: dict[str, list[dict[str, Any]]]) -> None:
    where = [w for w, *_ in extender_containers(rendered)]
    assert where == [
        "extender/extender/extender",
        "second-scheduler/extender-scheduler/extender",
        "node-cache/extender/extender",
    ]


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
    # Names mode, without bindVerb: the kube-scheduler container binds (DefaultBinder).
    assert ext["weight"] > 0 and ext["nodeCacheCapable"] is True and "bindVerb" not in ext
    assert settings.node_cache is True, "nodeCacheCapable: true needs the sidecar's node cache"


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

    (ext,) = config["extenders"]
    service_backend(rendered["extender"], ext["urlPrefix"])
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
    # The token is mounted by hand into the two containers that call the API server:
    # kube-scheduler, and the extender for its node cache (names mode). Nothing else gets one.
    assert pod["automountServiceAccountToken"] is False
    mounts = {c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])] for c in pod["containers"]}
    assert SA_TOKEN_DIR in mounts["kube-scheduler"]
    assert SA_TOKEN_DIR in mounts["extender"]


def test_schedulers_are_not_scheduled_by_themselves(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # protocol.md §3.2 bootstrapping caveat.
    for where, deployment in workloads(rendered):
        assert deployment["spec"]["template"]["spec"].get("schedulerName", "default-scheduler") != (
            SECOND_SCHEDULER_NAME
        ), where


def test_names_mode_scheduler_configs_are_strict_v1_and_reach_a_node_cache(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    names_mode = []
    for where, config, _, _, container in scheduler_configs(rendered):
        assert scheduler_config_problems(config) == [], where
        (ext,) = config["extenders"]
        if ext["nodeCacheCapable"]:
            names_mode.append(where)
            # Every name kube-scheduler sends is looked up in the extender's node cache.
            assert settings_of(container).node_cache is True, f"{where}: nodeCacheCapable without a node cache"
    assert names_mode == ["node-cache/scheduler-config.yaml", "second-scheduler/scheduler-config.yaml"]


def test_bind_verb_is_set_exactly_when_the_policy_binds(rendered: dict[str, list[dict[str, Any]]]) -> None:
    binders = []
    for where, config, docs, pod, container in scheduler_configs(rendered):
        (ext,) = config["extenders"]
        bind_enabled = mounted_policy(docs, pod, container).bind_enabled
        # bindVerb with bind disabled: every bind call fails. Bind enabled without bindVerb:
        # the bind RBAC is granted for nothing.
        assert bool(ext.get("bindVerb")) == bind_enabled, where
        if bind_enabled:
            binders.append(where)
            http_timeout = go_duration_seconds(ext.get("httpTimeout", "5s"))
            assert settings_of(container).bind_timeout < http_timeout, f"{where}: the bind must answer in time"
    assert binders == ["node-cache/scheduler-config.yaml"]


def test_node_cache_scheduler_config_points_at_the_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    path = DEPLOY / "node-cache" / "scheduler-config.yaml"
    config = yaml.safe_load(path.read_text())
    assert scheduler_config_problems(config) == []
    kustomization = yaml.safe_load((DEPLOY / "node-cache" / "kustomization.yaml").read_text())
    assert "scheduler-config.yaml" not in kustomization.get("resources", []), "a --config file, not an object"
    assert "node-cache/scheduler-config.yaml" in (DEPLOY / "README.md").read_text()
    (ext,) = config["extenders"]
    service_backend(rendered["node-cache"], ext["urlPrefix"])
    verbs = (ext["filterVerb"], ext["prioritizeVerb"], ext["preemptVerb"], ext["bindVerb"])
    assert verbs == ("filter", "prioritize", "preempt", "bind")
    assert ext["weight"] == 2 and ext["httpTimeout"] == "5s"
    assert ext["nodeCacheCapable"] is True and ext["ignorable"] is False
    assert "managedResources" not in ext, "the example is commented out: every pod goes to the extender"


def test_managed_resources_example_is_valid_once_uncommented() -> None:
    text = (DEPLOY / "node-cache" / "scheduler-config.yaml").read_text()
    example = uncommented_block(text, "managedResources:")
    assert example == {"managedResources": [{"name": "example.com/gpu-memory", "ignoredByScheduler": True}]}
    config = yaml.safe_load(text)
    config["extenders"][0].update(example)
    assert scheduler_config_problems(config) == []
    # The comment states protocol.md §2.4's caveat on ignoredByScheduler.
    prose = re.sub(r"\s*\n\s*#\s*", " ", text)
    assert "can't find NodeResourcesFitArgs in plugin config" in prose
    # ... and the name check catches what validateExtendedResourceName rejects.
    for bad in ("gpu-memory", "kubernetes.io/gpu", "example.kubernetes.io/gpu", "requests.example.com/gpu"):
        config["extenders"][0]["managedResources"] = [{"name": bad}]
        assert scheduler_config_problems(config), bad
    config["extenders"][0]["managedResources"] = [{"name": "example.com/a"}, {"name": "example.com/a"}]
    assert any("duplicate" in p for p in scheduler_config_problems(config))


def test_full_node_second_scheduler_config_is_kept_but_not_used(rendered: dict[str, list[dict[str, Any]]]) -> None:
    full = yaml.safe_load((DEPLOY / "second-scheduler" / "scheduler-config-full-nodes.yaml").read_text())
    assert scheduler_config_problems(full) == []
    _, names = sidecar_config(rendered)
    (full_ext,) = full["extenders"]
    assert full_ext["nodeCacheCapable"] is False
    # The same scheduler otherwise: only the mode differs.
    assert {**full, "extenders": [{**full_ext, "nodeCacheCapable": True}]} == names
    kustomization = yaml.safe_load((DEPLOY / "second-scheduler" / "kustomization.yaml").read_text())
    used = [f for g in kustomization["configMapGenerator"] for f in g.get("files", [])]
    assert "scheduler-config-full-nodes.yaml" not in " ".join(used + kustomization["resources"])


# -- API access: least privilege ----------------------------------------------------------------------


def test_extender_rbac_is_exactly_what_its_features_need(rendered: dict[str, list[dict[str, Any]]]) -> None:
    expected_features = {
        "extender/extender/extender": set(),
        "second-scheduler/extender-scheduler/extender": {"node-cache"},
        "node-cache/extender/extender": {"node-cache", "bind"},
    }
    for where, pod, container, docs in extender_containers(rendered):
        features = features_of(docs, pod, container)
        assert features == expected_features[where], where
        deployment = next(d for d in objects(docs, "Deployment") if d["spec"]["template"]["spec"] is pod)
        subject = service_account_of(deployment)
        one(docs, "ServiceAccount", subject["name"], subject["namespace"])
        granted = rbac_grants(docs, subject)
        needed = needed_rbac(features)
        assert has_api_token(docs, pod, container) is settings_of(container).needs_api("bind" in features, "metrics-server-source" in features), where
        if all(c["image"].split(":")[0] == EXTENDER_IMAGE for c in pod["containers"]):
            # An identity of its own: exactly what the features need, nothing more.
            assert granted == needed, f"{where}: granted {granted}, needs {needed}"
        else:
            # The second scheduler's pod: one ServiceAccount, shared with kube-scheduler.
            missing = {k: v - granted.get(k, set()) for k, v in needed.items() if v - granted.get(k, set())}
            assert not missing, f"{where}: missing {missing}"


def test_second_scheduler_sidecar_needs_no_rbac_of_its_own(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["second-scheduler"]
    pod, _ = sidecar_config(rendered)
    sidecar = next(c for c in pod["containers"] if c["image"].split(":")[0] == EXTENDER_IMAGE)
    subject = service_account_of(one(docs, "Deployment", SECOND_SCHEDULER_NAME))
    # system:kube-scheduler is what grants the node cache's nodes list/watch.
    bindings = [b for b in objects(docs, "ClusterRoleBinding") if binds(b, subject)]
    assert "system:kube-scheduler" in {b["roleRef"]["name"] for b in bindings}
    through_kube_scheduler = rbac_grants(
        [d for d in docs if "roleRef" not in d or d["roleRef"]["name"] == "system:kube-scheduler"], subject
    )
    for key, verbs in FEATURE_RBAC["node-cache"].items():
        assert verbs <= through_kube_scheduler.get(key, set()), key
    assert not objects(docs, "ClusterRole"), "no extender-specific ClusterRole: the scheduler's roles cover it"
    assert has_api_token(docs, pod, sidecar)
    assert settings_of(sidecar).node_cache is True and env_of(sidecar)["EXTENDER_NODE_CACHE"] == "true"


@pytest.fixture(scope="module")
def component_renders(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[dict[str, Any]]]:
    renders = {}
    for name in sorted(FEATURE_RBAC):
        directory = tmp_path_factory.mktemp(f"component-{name}")
        renders[name] = render_overlay(directory, [DEPLOY / "extender"], [DEPLOY / "components" / name])
    return renders


@pytest.mark.parametrize("component", sorted(FEATURE_RBAC))
def test_each_component_alone_adds_only_its_own_rules(
    component: str, rendered: dict[str, list[dict[str, Any]]], component_renders: dict[str, list[dict[str, Any]]]
) -> None:
    base, docs = rendered["extender"], component_renders[component]
    deployment = one(docs, "Deployment", "extender", "extender-system")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "extender")
    subject = service_account_of(deployment)
    assert subject == {"kind": "ServiceAccount", "name": "extender", "namespace": "extender-system"}
    assert rbac_grants(docs, subject) == FEATURE_RBAC[component]

    # Added: one ClusterRole and its ClusterRoleBinding. Changed: the Deployment only.
    added = [d for d in docs if d not in base]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in added) == [
        ("ClusterRole", f"extender-{component}"),
        ("ClusterRoleBinding", f"extender-{component}"),
        ("Deployment", "extender"),
    ]
    assert [d for d in base if d not in docs] == [one(base, "Deployment", "extender", "extender-system")]
    # The Deployment's only changes: the token, and the component's variables prepended.
    expected = json.loads(json.dumps(one(base, "Deployment", "extender", "extender-system")))
    expected_pod = expected["spec"]["template"]["spec"]
    expected_pod["automountServiceAccountToken"] = True
    (base_container,) = [c for c in expected_pod["containers"] if c["name"] == "extender"]
    variables = [{"name": k, "value": v} for k, v in COMPONENT_ENV[component].items()]
    base_container["env"] = variables + base_container["env"]
    assert deployment == expected

    assert has_api_token(docs, pod, container)
    settings = settings_of(container)
    assert settings.validate() == []
    policy = mounted_policy(docs, pod, container)
    assert (settings.node_cache, settings.pod_cache) == (component == "node-cache", component == "pod-cache")
    assert settings.preempt_node_lookup is (component == "preempt-node-lookup")
    # The bind component cannot switch bind on (the policy does): base policy, bind disabled.
    assert policy.bind_enabled is False
    # Neither can the metrics-server component add the source (the policy does).
    assert settings.needs_api(policy.bind_enabled) is (component not in ("bind", "metrics-server-source"))
    if component == "bind":
        text = (DEPLOY / "components" / "bind" / "kustomization.yaml").read_text()
        assert "enabled: true" in text, "the component must say the policy has to enable bind"


def test_components_combine_into_the_union_of_their_rules(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = render_overlay(tmp_path, [DEPLOY / "extender"], [DEPLOY / "components" / n for n in sorted(FEATURE_RBAC)])
    deployment = one(docs, "Deployment", "extender", "extender-system")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "extender")
    assert rbac_grants(docs, service_account_of(deployment)) == needed_rbac(set(FEATURE_RBAC))
    env = env_of(container)
    for variables in COMPONENT_ENV.values():
        assert variables.items() <= env.items()
    assert len(container["env"]) == len(env), "a variable set twice"


def test_node_cache_overlay_replaces_the_policy(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["node-cache"]
    (policy_map,) = [c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].startswith("extender-policy")]
    assert policy_map["data"] == {"policy.yaml": (DEPLOY / "node-cache" / "policy.yaml").read_text()}
    deployment = one(docs, "Deployment", "extender", "extender-system")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "extender")
    assert mounted_policy(docs, pod, container).bind_enabled is True
    base_name = next(c["metadata"]["name"] for c in objects(rendered["extender"], "ConfigMap"))
    assert policy_map["metadata"]["name"] != base_name, "a new content hash, so the pods roll"


def test_node_cache_policy_differs_from_the_base_only_by_bind() -> None:
    base_text = (DEPLOY / "extender" / "policy.yaml").read_text()
    text = (DEPLOY / "node-cache" / "policy.yaml").read_text()
    base, variant = yaml.safe_load(base_text), yaml.safe_load(text)
    assert base["bind"] == {"enabled": False} and variant["bind"] == {"enabled": True}
    assert {**base, "bind": {"enabled": True}} == variant
    # Line by line too: apart from comments, the one changed line is bind.enabled.
    changed = [
        line
        for line in difflib.unified_diff(base_text.splitlines(), text.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()
        and not line[1:].lstrip().startswith("#")
    ]
    assert changed == ["-  enabled: false", "+  enabled: true"]
    assert load_policy_text(text, "node-cache/policy.yaml").bind_enabled is True


def test_readme_covers_the_three_ways_and_their_rbac() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for needle in (
        "deploy/extender", "deploy/node-cache", "deploy/second-scheduler", "components/node-cache",
        "components/pod-cache", "components/bind", "components/preempt-node-lookup", "scheduler-config-full-nodes.yaml",
        "extender serve --node-cache --kubeconfig ~/.kube/config", "/readyz", "/healthz",
        "system:kube-scheduler",
    ):  # fmt: skip
        assert needle in readme, needle


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
