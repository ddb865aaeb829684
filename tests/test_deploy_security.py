"""deploy/'s network policies and pod security, rendered with ``kubectl kustomize``.

Who may reach the extender (only kube-scheduler: its CIDR on the extender's port, or nobody
when it is a loopback sidecar), what the extender may reach (nothing without API features, the
API server only with them), that the placeholders fail closed and the README's overlay fills
them in; and that every pod meets the Pod Security Standard "restricted" its namespace
enforces, checked here rather than only at admission.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_deploy import (
    DEPLOY,
    EXTENDER_IMAGE,
    features_of,
    objects,
    one,
    render,
    render_overlay,
    settings_of,
)

NETWORK_POLICY_SPEC_KEYS = {"podSelector", "policyTypes", "ingress", "egress"}
INGRESS_RULE_KEYS, EGRESS_RULE_KEYS = {"from", "ports"}, {"to", "ports"}
PEER_KEYS = {"ipBlock", "podSelector", "namespaceSelector"}
IP_BLOCK_KEYS = {"cidr", "except"}
PORT_KEYS = {"protocol", "port", "endPort"}
#: RFC 5737: never routed, so a placeholder left in place admits nobody
DOCUMENTATION_RANGES = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
COMPONENTS = DEPLOY / "components"
# Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards, v1.30).
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The shipped second scheduler, and the Service layouts with the network-policy components."""

    def overlay(name: str, base: str, components: list[str]) -> list[dict[str, Any]]:
        return render_overlay(tmp_path_factory.mktemp(name), [DEPLOY / base], [COMPONENTS / c for c in components])

    return {
        "second-scheduler": render(DEPLOY / "second-scheduler"),
        "extender+policy": overlay("extender", "extender", ["network-policy"]),
        "node-cache+policy": overlay("node-cache", "node-cache", ["network-policy", "network-policy-api-server"]),
        "node-cache+tls": overlay("node-cache-tls", "node-cache", ["tls", "network-policy", "network-policy-api-server"]),
    }


def pods(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(deployment name, pod template labels, pod spec)."""
    return [
        (d["metadata"]["name"], d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"])
        for d in objects(docs, "Deployment")
    ]


def selected(policy: dict[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    """The Deployments whose pods the policy selects (same namespace, matchLabels only)."""
    selector = policy["spec"]["podSelector"]
    assert set(selector) == {"matchLabels"}, "keep selectors to matchLabels (what this test understands)"
    namespace = policy["metadata"]["namespace"]
    return [
        name
        for name, labels, _ in pods(docs)
        if one(docs, "Deployment", name)["metadata"]["namespace"] == namespace
        and selector["matchLabels"].items() <= labels.items()
    ]


def network_policy_problems(policy: dict[str, Any]) -> list[str]:
    """What the API server's strict decoding and validation would reject, and bad CIDRs."""
    spec, problems = policy["spec"], []
    problems += [f"spec: unknown key {k!r}" for k in sorted(set(spec) - NETWORK_POLICY_SPEC_KEYS)]
    problems += [f"policyTypes: {t!r}" for t in spec.get("policyTypes", []) if t not in ("Ingress", "Egress")]
    for direction, rule_keys, peers_key in (("ingress", INGRESS_RULE_KEYS, "from"), ("egress", EGRESS_RULE_KEYS, "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            where = f"{direction}[{i}]"
            problems += [f"{where}: unknown key {k!r}" for k in sorted(set(rule) - rule_keys)]
            for j, peer in enumerate(rule.get(peers_key) or []):
                problems += [f"{where}.{peers_key}[{j}]: unknown key {k!r}" for k in sorted(set(peer) - PEER_KEYS)]
                if "ipBlock" in peer:
                    problems += [f"{where} ipBlock: unknown key {k!r}" for k in sorted(set(peer["ipBlock"]) - IP_BLOCK_KEYS)]
                    try:
                        ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=True)
                    except ValueError as exc:
                        problems.append(f"{where} ipBlock: {exc}")
            for port in rule.get("ports") or []:
                problems += [f"{where} port: unknown key {k!r}" for k in sorted(set(port) - PORT_KEYS)]
                if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                    problems.append(f"{where} port: protocol {port['protocol']!r}")
    return problems


def extender_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(labels, pod spec, extender container) of the layout's Deployment extender."""
    deployment = one(docs, "Deployment", "extender", "extender-system")
    template = deployment["spec"]["template"]
    container = next(c for c in template["spec"]["containers"] if c["image"].split(":")[0] == EXTENDER_IMAGE)
    return template["metadata"]["labels"], template["spec"], container


# -- network policies -------------------------------------------------------------------------------


def test_every_network_policy_is_valid_and_selects_a_pod(renders: dict[str, list[dict[str, Any]]]) -> None:
    for where, docs in renders.items():
        policies = objects(docs, "NetworkPolicy")
        assert policies, where
        for policy in policies:
            name = f"{where}: NetworkPolicy {policy['metadata']['name']}"
            assert policy["apiVersion"] == "networking.k8s.io/v1", name
            assert network_policy_problems(policy) == [], name
            assert selected(policy, docs), f"{name} selects no pod (labels out of step with the Deployment?)"


@pytest.mark.parametrize("layout", ["extender+policy", "node-cache+policy"])
def test_only_kube_schedulers_cidr_reaches_the_extenders_port(
    renders: dict[str, list[dict[str, Any]]], layout: str
) -> None:
    docs = renders[layout]
    _, pod, container = extender_pod(docs)
    settings = settings_of(container)
    policies = [p for p in objects(docs, "NetworkPolicy") if selected(p, docs) == ["extender"]]
    ingress_policies = [p for p in policies if "Ingress" in p["spec"]["policyTypes"]]
    assert [p["metadata"]["name"] for p in ingress_policies] == ["extender"]
    rules = [rule for p in ingress_policies for rule in p["spec"].get("ingress", [])]
    assert len(rules) == 1
    (rule,) = rules
    # Only an ipBlock: kube-scheduler is a hostNetwork static pod, no selector matches it.
    assert [set(peer) for peer in rule["from"]] == [{"ipBlock"}]
    assert rule["ports"] == [{"protocol": "TCP", "port": settings.port}]
    assert settings.port in [p["containerPort"] for p in container["ports"]]
    service = one(docs, "Service", "extender", "extender-system")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert pod.get("hostNetwork") is not True


@pytest.mark.parametrize(("layout", "api"), [("extender+policy", False), ("node-cache+policy", True)])
def test_egress_is_the_api_server_exactly_when_a_feature_calls_it(
    renders: dict[str, list[dict[str, Any]]], layout: str, api: bool
) -> None:
    docs = renders[layout]
    _, pod, container = extender_pod(docs)
    features = features_of(docs, pod, container)
    assert settings_of(container).needs_api("bind" in features, "metrics-server-source" in features) is api
    egress = [p for p in objects(docs, "NetworkPolicy") if "Egress" in p["spec"]["policyTypes"] and selected(p, docs)]
    assert egress, f"{layout}: egress must be isolated"
    allowed = [
        (peer["ipBlock"]["cidr"], port["port"])
        for policy in egress
        for rule in policy["spec"].get("egress", [])
        for peer in rule["to"]
        for port in rule["ports"]
    ]
    # No DNS either way: the API server's address is an IP (KUBERNETES_SERVICE_HOST).
    assert allowed == ([("198.51.100.0/24", 6443), ("203.0.113.1/32", 443)] if api else [])


def test_placeholders_admit_nobody_and_say_so() -> None:
    for path in sorted(COMPONENTS.glob("network-policy*/networkpolicy.yaml")):
        text = path.read_text()
        policy = yaml.safe_load(text)
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                cidr = peer["ipBlock"]["cidr"]
                network = ipaddress.ip_network(cidr)
                assert any(network.subnet_of(r) for r in DOCUMENTATION_RANGES), f"{path}: {cidr} is not a placeholder"  # type: ignore[arg-type]
                assert f"# REPLACE {cidr}" in text, f"{path}: say how to fill in {cidr}"


def readme_overlay() -> str:
    readme = (DEPLOY / "README.md").read_text()
    match = re.search(r"```yaml\n(# deploy/my-cluster/kustomization\.yaml\n.*?)```", readme, re.S)
    assert match, "deploy/README.md shows the network-policy overlay"
    return match[1]


def test_the_readme_overlay_fills_in_every_placeholder(tmp_path: Path) -> None:
    # Written where the README puts it, relative paths and all, but in a temporary copy.
    directory = tmp_path / "deploy" / "my-cluster"
    directory.mkdir(parents=True)
    (directory / "kustomization.yaml").write_text(readme_overlay())
    for name in ("node-cache", "extender", "components"):
        (tmp_path / "deploy" / name).symlink_to(DEPLOY / name)
    docs = render(directory)
    cidrs = [
        peer["ipBlock"]["cidr"]
        for policy in objects(docs, "NetworkPolicy")
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
        for peer in rule.get("from", []) + rule.get("to", [])
    ]
    assert len(cidrs) == 3
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        assert not any(network.subnet_of(r) for r in DOCUMENTATION_RANGES), f"{cidr}: a placeholder left"  # type: ignore[arg-type]


def test_second_scheduler_admits_no_ingress(renders: dict[str, list[dict[str, Any]]]) -> None:
    docs = renders["second-scheduler"]
    (policy,) = objects(docs, "NetworkPolicy")
    assert selected(policy, docs) == ["extender-scheduler"]
    assert policy["spec"]["policyTypes"] == ["Ingress"] and not policy["spec"].get("ingress")
    _, _, spec = next(p for p in pods(docs) if p[0] == "extender-scheduler")
    sidecar = next(c for c in spec["containers"] if c["image"].split(":")[0] == EXTENDER_IMAGE)
    assert settings_of(sidecar).host == "127.0.0.1", "loopback: the only caller is in the pod"
    # The probes that must still pass come from the node (always allowed) or run in the container.
    for container in spec["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            assert set(container[probe]) & {"httpGet", "exec"}, container["name"]


# -- pod security ---------------------------------------------------------------------------------


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Where a pod spec breaks the Pod Security Standard "restricted" (baseline included)."""
    problems = [f"{key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True]
    pod_sc = spec.get("securityContext", {})
    problems += [f"sysctl {s['name']}" for s in pod_sc.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        problems += [f"volume {volume['name']}: {k}" for k in kinds if k not in RESTRICTED_VOLUME_TYPES]
    containers = spec.get("initContainers", []) + spec["containers"] + spec.get("ephemeralContainers", [])
    for c in containers:
        sc, name = c.get("securityContext", {}), c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
            problems.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp!r}")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        problems += [f"{name}: adds {a}" for a in capabilities.get("add", []) if a != "NET_BIND_SERVICE"]
        problems += [f"{name}: hostPort" for p in c.get("ports", []) if p.get("hostPort")]
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount")
        if set(sc.get("seLinuxOptions", {})) - {"type", "level"}:
            problems.append(f"{name}: seLinuxOptions user/role")
    return problems


def test_the_restricted_check_catches_what_admission_rejects() -> None:
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    problems = restricted_violations(bad)
    for expected in ("hostNetwork: true", "volume root: hostPath", "c: privileged", "c: adds SYS_ADMIN",
                     "c: runAsNonRoot must be true", "c: seccompProfile None", "c: capabilities must drop ALL"):  # fmt: skip
        assert expected in problems


@pytest.mark.parametrize("layout", ["extender", "node-cache", "second-scheduler"])
def test_every_pod_meets_the_restricted_standard_its_namespace_enforces(layout: str) -> None:
    docs = render(DEPLOY / layout)
    for namespace in objects(docs, "Namespace"):
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", namespace["metadata"]["name"]
    for name, _, spec in pods(docs):
        assert restricted_violations(spec) == [], f"{layout}/{name}"
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
                # Writable: scratch space only (gunicorn's heartbeat files, HOME=/tmp).
                assert mount.get("readOnly") is True or "emptyDir" in volume, f"{layout}/{name}/{container['name']}"
                if "emptyDir" in volume:
                    assert volume["emptyDir"].get("sizeLimit"), f"{layout}/{name}: an unbounded emptyDir"


def test_the_threat_model_points_at_what_ships() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    section = readme.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
    for component in re.findall(r"deploy/components/([\w-]+)", section) + ["network-policy-api-server"]:
        assert (COMPONENTS / component / "kustomization.yaml").is_file(), component
    for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--max-body-bytes", "--node-cache", "--pod-cache"):
        assert flag in section, flag
    headings = re.findall(r"^#+ (.+)$", (DEPLOY / "README.md").read_text(), re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}  # GitHub's anchors
    anchors = re.findall(r"deploy/README\.md#([\w-]+)", section)
    assert anchors and set(anchors) <= slugs, anchors
