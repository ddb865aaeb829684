"""The chart and the kustomize layouts describe the same deployment.

With the release name ``extender`` in ``extender-system`` the chart's object names are the
layouts'; after normalising what must differ (labels, kustomize's ConfigMap hash suffixes, image
tags, label selectors) the workloads, Services, PDBs, RBAC and NetworkPolicies must be equal:
deploy/second-scheduler for the default values, deploy/node-cache for the service layout
(names mode, bind), deploy/extender for full-node mode, deploy/components/* for each feature.
Each difference that is meant is an explicit, commented exception below.
"""

from __future__ import annotations

import copy
import functools
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm_chart import NAMESPACE, render_chart
from tests.test_chart import BIND_POLICY, embedded_config
from tests.test_deploy import (
    COMPONENT_ENV,
    DEPLOY,
    FEATURE_RBAC,
    env_of,
    has_api_token,
    needed_rbac,
    objects,
    one,
    rbac_grants,
    render,
    render_overlay,
    service_account_of,
    settings_of,
)

COMPONENTS = DEPLOY / "components"
MODERN = COMPONENTS / "kubernetes-1.27"
OLD, NEW = "v1.24.17", "v1.30.6"  # 1.24: the layouts as they are; 1.30: with components/kubernetes-1.27
KUSTOMIZE_HASH = re.compile(r"-[a-z0-9]{10}$")
# The chart's values for each kustomize layout it must equal.
NODE_CACHE = {"layout": "service", "policy": {"content": BIND_POLICY}, "features": {"bind": True}}
FULL_NODES = {"layout": "service", "mode": "fullNodes"}
# values.yaml's feature -> the component it mirrors
FEATURE_VALUES = {"pod-cache": "podCache", "events": "events", "preempt-node-lookup": "preemptNodeLookup",
                  "metrics-server-source": "metricsServerSource", "bind": "bind"}  # fmt: skip


@functools.cache
def kustomize(layout: str, *components: str) -> tuple[dict[str, Any], ...]:
    """A layout with components, rendered once (tuple: cached, so never modify the result)."""
    if not components:
        return tuple(render(DEPLOY / layout))
    with tempfile.TemporaryDirectory() as directory:
        return tuple(render_overlay(Path(directory), [DEPLOY / layout], [COMPONENTS / c for c in components]))


@functools.cache
def chart(kube_version: str, values_yaml: str) -> tuple[dict[str, Any], ...]:
    return tuple(render_chart(yaml.safe_load(values_yaml), kube_version)[0])


def chart_docs(kube_version: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    return list(chart(kube_version, yaml.safe_dump(values, sort_keys=True)))


def normalised(doc: dict[str, Any]) -> dict[str, Any]:
    """What must agree: labels and annotations dropped (the chart's are Helm's, kustomize's its
    own), ConfigMap hash suffixes dropped (the chart rolls pods by a checksum annotation
    instead), images without their tag (both pin their own), label selectors replaced by a
    marker (the chart selects by name, instance and component)."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("labels", None)
    doc["metadata"].pop("annotations", None)
    if doc["kind"] == "ConfigMap":
        doc["metadata"]["name"] = KUSTOMIZE_HASH.sub("", doc["metadata"]["name"])
    spec = doc.get("spec", {})
    if "selector" in spec:
        spec["selector"] = "<selector>"
    if "podSelector" in spec:
        spec["podSelector"] = "<selector>"
    pod = spec.get("template", {}).get("spec")
    if pod:
        spec["template"]["metadata"] = "<pod metadata>"
        for constraint in pod.get("topologySpreadConstraints", []):
            constraint["labelSelector"] = "<selector>"
        # Strategic merge (the components) puts what it adds before the base's entries; the
        # chart writes it after: the order of these named entries carries no meaning.
        pod["volumes"] = sorted(pod.get("volumes", []), key=lambda v: v["name"])
        for volume in pod["volumes"]:
            if "configMap" in volume and volume["configMap"]["name"] != "kube-root-ca.crt":
                volume["configMap"]["name"] = KUSTOMIZE_HASH.sub("", volume["configMap"]["name"])
        for container in pod["containers"]:
            container["image"] = container["image"].rsplit(":", 1)[0]
            # (no $(VAR) references, so the variables' order does not matter either)
            for named in ("env", "ports", "volumeMounts"):
                if named in container:
                    container[named] = sorted(container[named], key=lambda v: v["name"])
    return doc


def by_key(docs: list[dict[str, Any]] | tuple[dict[str, Any], ...], kinds: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for doc in docs:
        if doc["kind"] in kinds:
            found[(doc["kind"], KUSTOMIZE_HASH.sub("", doc["metadata"]["name"]))] = normalised(doc)
    return found


WORKLOAD_KINDS = {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def assert_same(chart_side: dict[tuple[str, str], dict[str, Any]], kustomize_side: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert sorted(chart_side) == sorted(kustomize_side)
    for key, doc in kustomize_side.items():
        assert chart_side[key] == doc, key


@pytest.mark.parametrize(("kube_version", "components"), [(OLD, ()), (NEW, ("kubernetes-1.27",))])
def test_the_default_values_are_deploy_second_scheduler(kube_version: str, components: tuple[str, ...]) -> None:
    ours = chart_docs(kube_version, {"networkPolicy": {"enabled": True}})
    theirs = kustomize("second-scheduler", *components)
    kinds = WORKLOAD_KINDS | RBAC_KINDS | {"NetworkPolicy"}
    assert_same(by_key(ours, kinds), by_key(theirs, kinds))
    # The kube-scheduler configuration, parsed (the chart's comments differ): the same once the
    # chart runs the release deploy/second-scheduler pins (its config is v1 only from 1.25).
    theirs_config = yaml.safe_load(next(c for c in objects(list(theirs), "ConfigMap")
                                        if c["metadata"]["name"].startswith("extender-scheduler-config"))["data"]["scheduler-config.yaml"])  # fmt: skip
    if kube_version == NEW:
        assert embedded_config(ours) == theirs_config
    # Not rendered by the chart: the Namespace (Helm creates it with --create-namespace; label
    # it pod-security.kubernetes.io/enforce=restricted yourself, as namespace.yaml does).
    assert {d["kind"] for d in theirs} - {d["kind"] for d in ours} == {"Namespace"}


@pytest.mark.parametrize(("kube_version", "components"), [(OLD, ()), (NEW, ("kubernetes-1.27",))])
@pytest.mark.parametrize(("values", "layout"), [(NODE_CACHE, "node-cache"), (FULL_NODES, "extender")], ids=["names", "full-nodes"])
def test_the_service_layout_is_deploy_node_cache_or_deploy_extender(
    values: dict[str, Any], layout: str, kube_version: str, components: tuple[str, ...]
) -> None:
    ours = chart_docs(kube_version, values)
    theirs = kustomize(layout, *components)
    kinds = WORKLOAD_KINDS | RBAC_KINDS
    assert_same(by_key(ours, kinds), by_key(theirs, kinds))
    # The policy mounted is the layout's, byte for byte.
    (ours_policy,) = [c for c in objects(ours, "ConfigMap") if c["metadata"]["name"] == "extender-policy"]
    (theirs_policy,) = [c for c in theirs if c["kind"] == "ConfigMap"]
    assert ours_policy["data"] == theirs_policy["data"]
    # The configuration to copy to the control plane is the layout's scheduler-config.yaml, parsed.
    if kube_version == NEW:
        assert embedded_config(ours) == yaml.safe_load((DEPLOY / layout / "scheduler-config.yaml").read_text())


def test_tls_is_deploy_components_tls() -> None:
    values = {**NODE_CACHE, "tls": {"enabled": True, "existingSecret": "extender-tls"}}
    ours = chart_docs(OLD, values)
    theirs = kustomize("node-cache", "tls")
    assert_same(by_key(ours, WORKLOAD_KINDS), by_key(theirs, WORKLOAD_KINDS))
    # The control plane's side: components/tls/scheduler-config.yaml's extender (that file
    # leaves out the clientConnection and leaderElection the chart keeps from way 1's).
    theirs_config = yaml.safe_load((COMPONENTS / "tls" / "scheduler-config.yaml").read_text())
    assert embedded_config(chart_docs(NEW, values))["extenders"] == theirs_config["extenders"]
    # With cert-manager, the same pod reads the Secret the Certificate writes.
    managed = chart_docs(OLD, {**NODE_CACHE, "tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}})
    (certificate,) = objects(managed, "Certificate")
    assert certificate["spec"]["secretName"] == "extender-tls"
    assert "extender.extender-system.svc" in certificate["spec"]["dnsNames"]
    assert by_key(managed, {"Deployment"}) == by_key(theirs, {"Deployment"})


def test_network_policy_is_the_two_components_in_one_object() -> None:
    """Exception: kustomize splits ingress (network-policy) and API-server egress
    (network-policy-api-server) into two components so that full-node overlays can leave the
    second out; the chart knows the mode and renders one policy. Policies add up, so the
    union of their rules is what must agree."""
    peers = {"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
             "apiServer": {"cidrs": ["198.51.100.0/24"], "serviceIP": "203.0.113.1"}}  # fmt: skip
    for values, layout, components in [
        ({**NODE_CACHE, "networkPolicy": {"enabled": True, **peers}}, "node-cache", ("network-policy", "network-policy-api-server")),
        ({**FULL_NODES, "networkPolicy": {"enabled": True, **peers}}, "extender", ("network-policy",)),
    ]:
        ours = objects(chart_docs(OLD, values), "NetworkPolicy")
        theirs = objects(list(kustomize(layout, *components)), "NetworkPolicy")

        def union(policies: list[dict[str, Any]]) -> tuple[set[str], list[Any], list[Any]]:
            types = {t for p in policies for t in p["spec"]["policyTypes"]}
            return types, [r for p in policies for r in p["spec"].get("ingress", [])], [r for p in policies for r in p["spec"].get("egress", [])]

        assert len(ours) == 1 and union(ours) == union(theirs), components


@pytest.mark.parametrize("feature", sorted(FEATURE_VALUES))
def test_each_feature_adds_exactly_its_components_rbac_and_variable(feature: str) -> None:
    if feature == "bind":  # names mode only, and the policy must enable bind
        base_values, values = {"layout": "service"}, NODE_CACHE
    else:
        base_values, values = FULL_NODES, {**FULL_NODES, "features": {FEATURE_VALUES[feature]: True}}
    base, ours = chart_docs(OLD, base_values), chart_docs(OLD, values)
    theirs = kustomize("extender", feature)
    # The component's ClusterRole and ClusterRoleBinding, equal (same names).
    component_rbac = by_key(theirs, RBAC_KINDS)
    assert component_rbac and all(key in by_key(ours, RBAC_KINDS) for key in component_rbac)
    for key, doc in component_rbac.items():
        assert by_key(ours, RBAC_KINDS)[key] == doc
    deployment = one(ours, "Deployment", "extender", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    subject = service_account_of(deployment)
    features = {feature} | ({"node-cache"} if feature == "bind" else set())
    assert rbac_grants(ours, subject) == needed_rbac(features)
    assert has_api_token(ours, pod, container)
    # Against the chart without it: exactly the component's variable and one ClusterRole more.
    (base_container,) = one(base, "Deployment", "extender", NAMESPACE)["spec"]["template"]["spec"]["containers"]
    assert env_of(container) == {**env_of(base_container), **COMPONENT_ENV[feature]}
    assert len(objects(ours, "ClusterRole")) == len(objects(base, "ClusterRole")) + 1


@pytest.mark.parametrize(("values", "features"), [({"layout": "service"}, {"node-cache"}), (FULL_NODES, set())], ids=["names", "full-nodes"])
def test_the_defaults_grant_nothing_they_do_not_need(values: dict[str, Any], features: set[str]) -> None:
    docs = chart_docs(NEW, values)
    deployment = one(docs, "Deployment", "extender", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    assert rbac_grants(docs, service_account_of(deployment)) == needed_rbac(features)
    assert has_api_token(docs, pod, pod["containers"][0]) is bool(features)
    assert settings_of(pod["containers"][0]).validate() == []


def test_the_second_schedulers_features_add_only_what_system_kube_scheduler_lacks() -> None:
    """The sidecar shares kube-scheduler's ServiceAccount: system:kube-scheduler covers the
    node and pod caches, bind, events and node lookups; a metrics-server source is the only
    feature with a ClusterRole of its own (the component's rules)."""
    values = {"policy": {"content": BIND_POLICY}, "features": {v: True for v in FEATURE_VALUES.values()}}
    docs = chart_docs(NEW, values)
    deployment = one(docs, "Deployment", "extender-scheduler", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "extender")
    granted = rbac_grants(docs, service_account_of(deployment))
    needed = needed_rbac(set(FEATURE_RBAC))
    assert all(verbs <= granted.get(key, set()) for key, verbs in needed.items()), (needed, granted)
    assert [r["metadata"]["name"] for r in objects(docs, "ClusterRole")] == ["extender-scheduler-metrics-server-source"]
    assert objects(docs, "ClusterRole")[0]["rules"] == by_key(kustomize("extender", "metrics-server-source"), {"ClusterRole"})[
        ("ClusterRole", "extender-metrics-server-source")]["rules"]  # fmt: skip
    env = env_of(sidecar)
    for variables in COMPONENT_ENV.values():
        assert variables.items() <= env.items()
    assert has_api_token(docs, pod, sidecar)
    # Full-node mode without features: the sidecar gets no token (scheduler-config-full-nodes.yaml's advice).
    docs = chart_docs(NEW, {"mode": "fullNodes"})
    pod = one(docs, "Deployment", "extender-scheduler", NAMESPACE)["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "extender")
    assert not has_api_token(docs, pod, sidecar) and "EXTENDER_NODE_CACHE" not in env_of(sidecar)
    full_nodes = yaml.safe_load((DEPLOY / "second-scheduler" / "scheduler-config-full-nodes.yaml").read_text())
    assert embedded_config(docs) == full_nodes
