"""deploy/chart/extender rendered offline (helm-python-sdk's embedded Helm), for several
Kubernetes versions and value sets: every object passes the strict Kubernetes schemas, the
custom resources carry what their CRDs require, and the KubeSchedulerConfiguration is what
``extender scheduler-config`` renders for the same inputs and what kube-scheduler accepts.
tests/test_chart_kustomize.py checks that the chart agrees with the kustomize layouts.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

from extender.policy import load_policy_text
from extender.schedconfig import KubeVersion, Setup, api_version_for, render
from tests.helm_chart import CHART, NAMESPACE, render_chart, render_failure
from tests.test_deploy import DEPLOY, env_of, objects, one, scheduler_config_problems, settings_of
from tests.test_deploy_schemas import POD_MONITOR_SCHEMA, VERSIONS, schema_problem

ROOT = Path(__file__).resolve().parents[1]
# kube version given to Helm -> the kube-scheduler tag the default values must run
DEFAULT_RENDERS = {
    "v1.22.17": "v1.22.17",
    "v1.24.17": "v1.24.17",
    "v1.28.15": "v1.28.15",
    "v1.30.6": "v1.30.6",
    "v1.35.0": "v1.35.0",
    "v1.30.5-eks-ce1d5eb": "v1.30.5",
    "v1.29.8-gke.1031000": "v1.29.8",
}
BIND_POLICY = (DEPLOY / "node-cache" / "policy.yaml").read_text()
NO_PRIORITIES_POLICY = """\
version: 1
predicates:
- name: node-condition
  type: node-condition
  params:
    conditions:
    - {type: Ready, status: "True", match: NotEqual}
"""
NO_PREDICATES_POLICY = """\
version: 1
priorities:
- name: newest-nodes
  type: node-metadata
  weight: 1
  params: {source: creationTimestamp, strategy: newest}
"""
ALL_FEATURES = {"podCache": True, "events": True, "preemptNodeLookup": True, "metricsServerSource": True, "bind": True}
NETWORK_POLICY = {
    "enabled": True,
    "from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
    "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    "apiServer": {"cidrs": ["198.51.100.0/24"], "port": 6443, "serviceIP": "203.0.113.1"},
}
METRICS = {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
           "prometheusRule": {"enabled": True, "labels": {"role": "alert-rules"}}}  # fmt: skip
CERT_MANAGER = {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "extender-ca"}, "clientCertificate": True}}
ZONE_SPREAD = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "extender"}}}  # fmt: skip
VALUE_SETS: dict[str, dict[str, Any]] = {
    "service-names": {"layout": "service"},
    "service-full-nodes": {"layout": "service", "mode": "fullNodes"},
    "service-full-nodes-lookup": {"layout": "service", "mode": "fullNodes", "features": {"preemptNodeLookup": True}},
    "service-all-features": {"layout": "service", "policy": {"content": BIND_POLICY}, "features": ALL_FEATURES},
    "service-tls-secret": {"layout": "service", "tls": {"enabled": True, "existingSecret": "my-tls"}},
    "service-tls-cert-manager": {"layout": "service", "tls": CERT_MANAGER, "metrics": METRICS},
    "service-network-policy": {"layout": "service", "networkPolicy": NETWORK_POLICY, "metrics": METRICS},
    "service-full-nodes-network-policy": {"layout": "service", "mode": "fullNodes", "networkPolicy": NETWORK_POLICY},
    "service-everything": {"layout": "service", "policy": {"content": BIND_POLICY}, "features": ALL_FEATURES,
                           "tls": CERT_MANAGER, "metrics": METRICS, "networkPolicy": NETWORK_POLICY,
                           "schedulerConfig": {"managedResources": ["example.com/gpu-memory"], "ignoredByScheduler": True,
                                               "ignorable": True, "weight": 5, "httpTimeout": "3s"},
                           "topologySpreadConstraints": [ZONE_SPREAD], "replicas": 3,
                           "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                               {"matchExpressions": [{"key": "node-pool", "operator": "In", "values": ["system"]}]}]}}}},
    "second-no-priorities": {"policy": {"content": NO_PRIORITIES_POLICY}},
    "second-no-predicates": {"policy": {"content": NO_PREDICATES_POLICY}},
    "second-bind": {"policy": {"content": BIND_POLICY}, "features": {"bind": True}},
    "second-full-nodes": {"mode": "fullNodes"},
    "second-everything": {"policy": {"content": BIND_POLICY}, "features": ALL_FEATURES, "metrics": METRICS,
                          "networkPolicy": NETWORK_POLICY, "scheduler": {"name": "gpu-scheduler", "replicas": 3},
                          "podLabels": {"team": "platform"}, "podAnnotations": {"example.com/owner": "platform"},
                          "nodeSelector": {"kubernetes.io/os": "linux"},
                          "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                          "priorityClassName": "system-cluster-critical",
                          "extraEnv": [{"name": "EXTENDER_DECISION_LOG", "value": "detail"}]},
    "second-existing-policy": {"policy": {"existingConfigMap": "my-policy", "existingConfigMapVerbs": ["filter", "preempt"]}},
    "overrides": {"fullnameOverride": "placement", "image": {"repository": "registry.example.com/extender", "tag": "0.2.0"},
                  "scheduler": {"image": {"tag": "v1.31.2"}}},
}  # fmt: skip
NON_DEFAULT_VERSIONS = ("v1.24.17", "v1.35.0")
RENDERS = [("default", v) for v in DEFAULT_RENDERS] + [(name, v) for name in VALUE_SETS for v in NON_DEFAULT_VERSIONS]
# Custom resources: not in Kubernetes' OpenAPI; what their CRDs require, checked by assertion.
CRD_KINDS = {("monitoring.coreos.com/v1", k) for k in ("ServiceMonitor", "PodMonitor", "PrometheusRule")}
CRD_KINDS.add(("cert-manager.io/v1", "Certificate"))


def values_of(name: str) -> dict[str, Any]:
    return {} if name == "default" else VALUE_SETS[name]


@functools.cache
def rendered(name: str, kube_version: str) -> tuple[list[dict[str, Any]], str]:
    """Each value set rendered once per version (the tests share the result)."""
    return render_chart(values_of(name), kube_version)


@pytest.fixture(scope="module", params=RENDERS, ids=[f"{n}@{v}" for n, v in RENDERS])
def render_case(request: pytest.FixtureRequest) -> tuple[str, str, list[dict[str, Any]]]:
    name, version = request.param
    return name, version, rendered(name, version)[0]


def minor_of(kube_version: str) -> int:
    return KubeVersion.parse(kube_version).minor


def schema_versions(kube_version: str) -> list[str]:
    """The schemas a render for ``kube_version`` must pass: its own release's (when
    kubernetes-validate ships it; 1.24's for older ones) and every one of VERSIONS after it."""
    minor = minor_of(kube_version)
    shipped = {major_minor(v) for v in all_versions()}
    own = f"1.{minor}" if f"1.{minor}" in shipped else "1.24"
    later = [v for v in VERSIONS if int(v.split(".")[1]) >= minor]
    return sorted({own, *later}, key=lambda v: int(v.split(".")[1]))


def scheduler_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in objects(docs, "Deployment")
                     if any(c["name"] == "kube-scheduler" for c in d["spec"]["template"]["spec"]["containers"])]  # fmt: skip
    return deployment


def extender_container(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment,) = objects(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "extender")


def embedded_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (configmap,) = [c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].endswith("-scheduler-config")]
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    return config


# -- default values: the second scheduler follows the cluster's version ---------------------------


@pytest.mark.parametrize("kube_version", DEFAULT_RENDERS)
def test_default_values_run_the_kube_scheduler_of_the_clusters_version(kube_version: str) -> None:
    docs, notes = rendered("default", kube_version)
    deployment = scheduler_deployment(docs)
    (scheduler,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-scheduler"]
    assert scheduler["image"] == f"registry.k8s.io/kube-scheduler:{DEFAULT_RENDERS[kube_version]}"
    config = embedded_config(docs)
    version = KubeVersion.parse(kube_version)
    expected = {22: "v1beta2", 23: "v1beta3", 24: "v1beta3"}.get(version.minor, "v1")
    assert config["apiVersion"] == f"kubescheduler.config.k8s.io/{expected}" == api_version_for(version)
    assert config["profiles"] == [{"schedulerName": "extender-scheduler"}]
    assert config["leaderElection"] == {"leaderElect": True, "resourceLock": "leases",
                                        "resourceName": "extender-scheduler", "resourceNamespace": NAMESPACE}  # fmt: skip
    assert "schedulerName: extender-scheduler" in notes


def test_an_explicit_scheduler_tag_decides_the_config_version() -> None:
    docs, _ = rendered("overrides", "v1.24.17")
    (scheduler,) = [c for c in scheduler_deployment(docs)["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-scheduler"]
    assert scheduler["image"] == "registry.k8s.io/kube-scheduler:v1.31.2"
    assert embedded_config(docs)["apiVersion"] == "kubescheduler.config.k8s.io/v1"  # 1.31's, not the cluster's v1beta3


@pytest.mark.parametrize("kube_version", ["v1.21.14", "v1.36.0"])
def test_releases_outside_1_22_to_1_35_fail_naming_the_values_to_set(kube_version: str) -> None:
    message = render_failure({}, kube_version)
    assert f"kube-scheduler {kube_version}" in message and ".Capabilities.KubeVersion" in message
    assert "scheduler.image.tag and scheduler.configApiVersion" in message
    # The tag alone is not enough: the chart cannot know the config version of an unknown release.
    message = render_failure({"scheduler": {"image": {"tag": kube_version}}}, kube_version)
    assert "scheduler.image.tag" in message and "scheduler.configApiVersion" in message
    service = render_failure({"layout": "service"}, kube_version)
    assert "scheduler.configApiVersion" in service and kube_version in service


def test_both_overrides_render_an_unknown_release() -> None:
    values = {"scheduler": {"image": {"tag": "v1.36.1"}, "configApiVersion": "kubescheduler.config.k8s.io/v1"}}
    docs, _ = render_chart(values, "v1.36.0")
    assert embedded_config(docs)["apiVersion"] == "kubescheduler.config.k8s.io/v1"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"layout": "sidecar"}, "/layout"),
        ({"mode": "nodes"}, "/mode"),
        ({"scheduler": {"replicas": "two"}}, "/scheduler/replicas"),
        ({"replica": 3}, "'replica'"),
        ({"schedulerConfig": {"httpTimeout": "5 seconds"}}, "/schedulerConfig/httpTimeout"),
        ({"features": {"podcache": True}}, "'podcache'"),
        ({"tls": {"enabled": "yes"}}, "/tls/enabled"),
    ],
)
def test_values_the_schema_refuses_fail_naming_the_key(values: dict[str, Any], key: str) -> None:
    assert key in render_failure(values, "v1.30.6")


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"features": {"bind": True}}, "features.bind"),  # the default policy does not bind
        ({"policy": {"content": BIND_POLICY}}, "features.bind"),  # a binding policy without its RBAC
        ({"policy": {"content": BIND_POLICY}, "features": {"bind": True}, "mode": "fullNodes"}, "mode: names"),
        ({"policy": {"content": "version: 1\n"}}, "no enabled predicates or priorities"),
        ({"tls": {"enabled": True}}, "tls.enabled"),  # the sidecar is on loopback
        ({"layout": "service", "tls": {"enabled": True, "certManager": {"enabled": True}}}, "tls.certManager.issuerRef.name"),
        ({"layout": "service", "networkPolicy": {"enabled": True}}, "networkPolicy.from"),
        ({"layout": "service", "networkPolicy": {"enabled": True, "from": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}},
         "networkPolicy.apiServer.cidrs"),
        ({"metrics": {"port": 8888}}, "metrics.port"),
        ({"layout": "service", "metrics": METRICS, "networkPolicy": {**NETWORK_POLICY, "metricsFrom": []}},
         "networkPolicy.metricsFrom"),
        ({"policy": {"content": "version: 1\nsources: {m: {type: metrics-server}}\n" + NO_PRIORITIES_POLICY[11:]}},
         "features.metricsServerSource"),
    ],
)  # fmt: skip
def test_combinations_that_cannot_work_fail_naming_the_values(values: dict[str, Any], names: str) -> None:
    assert names in render_failure(values, "v1.30.6")


# -- every render: schemas, custom resources, the scheduler configuration -------------------------


def test_every_object_passes_the_strict_schemas(render_case: tuple[str, str, list[dict[str, Any]]]) -> None:
    name, kube_version, docs = render_case
    problems = []
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        assert doc["metadata"].get("namespace") in (NAMESPACE, "kube-system") or doc["kind"].startswith("Cluster"), doc
        for version in schema_versions(kube_version):
            problem = schema_problem(doc, version)
            if problem:
                problems.append(f"{doc['kind']} {doc['metadata']['name']} on {version}: {problem}")
    assert problems == [], f"{name} for {kube_version}:\n" + "\n".join(problems)


def test_custom_resources_carry_what_their_crds_require(render_case: tuple[str, str, list[dict[str, Any]]]) -> None:
    name, _, docs = render_case
    for doc in docs:
        kind = doc["kind"]
        if (doc["apiVersion"], kind) not in CRD_KINDS:
            continue
        assert doc["metadata"]["namespace"] == NAMESPACE and doc["metadata"]["name"]
        spec = doc["spec"]
        if kind == "PodMonitor":
            jsonschema.Draft202012Validator(POD_MONITOR_SCHEMA).validate(doc)
            pod = scheduler_deployment(docs)["spec"]["template"]
            assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert {e["port"] for e in spec["podMetricsEndpoints"]} <= ports
        elif kind == "ServiceMonitor":
            (service,) = objects(docs, "Service")
            assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            assert {e["port"] for e in spec["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
            assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]} and spec["jobLabel"] == "app.kubernetes.io/name"
        elif kind == "PrometheusRule":
            assert [g["name"] for g in spec["groups"]] == ["extender"] and all("alert" in r for r in spec["groups"][0]["rules"])
        else:  # cert-manager Certificate: secretName and issuerRef.name are required
            assert spec["secretName"] and spec["issuerRef"]["name"] == "extender-ca", name
            assert set(spec) <= {"secretName", "duration", "renewBefore", "dnsNames", "usages", "privateKey",
                                 "issuerRef", "commonName"}  # fmt: skip


def expected_setup(values: dict[str, Any], kube_version: str, docs: list[dict[str, Any]]) -> Setup:
    """What `extender scheduler-config` is given for the same values."""
    service = values.get("layout") == "service"
    config = values.get("schedulerConfig", {})
    tls = values.get("tls", {}).get("enabled", False)
    if service:
        version = KubeVersion.parse(kube_version)
        (svc,) = objects(docs, "Service")
        url = f"{'https' if tls else 'http'}://{svc['metadata']['name']}.{NAMESPACE}.svc:8888/scheduler"
    else:
        tag = values.get("scheduler", {}).get("image", {}).get("tag") or kube_version
        version, url = KubeVersion.parse(tag), "http://127.0.0.1:8888/scheduler"
    files = "/etc/kubernetes/extender/"
    return Setup(
        url=url,
        version=version,
        names_mode=values.get("mode", "names") == "names",
        weight=config.get("weight", 2),
        http_timeout=config.get("httpTimeout", "5s"),
        ignorable=config.get("ignorable", False),
        tls_ca=files + "ca.crt" if tls else None,
        client_cert=files + "client.crt" if tls else None,
        client_key=files + "client.key" if tls else None,
        managed_resources=tuple(config.get("managedResources", ())),
        ignored_by_scheduler=config.get("ignoredByScheduler", False),
        scheduler_name="default-scheduler" if service else values.get("scheduler", {}).get("name", "extender-scheduler"),
        lease_namespace=None if service else NAMESPACE,
        kubeconfig="/etc/kubernetes/scheduler.conf" if service else None,
    )


def test_the_scheduler_config_is_what_extender_scheduler_config_renders(
    render_case: tuple[str, str, list[dict[str, Any]]],
) -> None:
    name, kube_version, docs = render_case
    values = values_of(name)
    config = embedded_config(docs)
    setup = expected_setup(values, kube_version, docs)
    assert scheduler_config_problems(config, setup.version) == [], name
    if "existingConfigMap" in values.get("policy", {}):
        assert {k for k in config["extenders"][0] if k.endswith("Verb")} == {"filterVerb", "preemptVerb"}
        return
    (policy_map,) = [c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].endswith("-policy")]
    policy = load_policy_text(policy_map["data"]["policy.yaml"], "policy.yaml")
    assert config == render(policy, setup).config, name


def test_the_verbs_follow_the_policy() -> None:
    def verbs(name: str) -> set[str]:
        config = embedded_config(rendered(name, "v1.35.0")[0])
        return {k for k in config["extenders"][0] if k.endswith("Verb")}

    assert verbs("second-no-priorities") == {"filterVerb", "preemptVerb"}
    assert "weight" not in embedded_config(rendered("second-no-priorities", "v1.35.0")[0])["extenders"][0]
    assert verbs("second-no-predicates") == {"prioritizeVerb"}
    assert verbs("second-bind") == {"filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb"}
    assert verbs("service-all-features") == {"filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb"}
    assert verbs("default") == verbs("service-names") == {"filterVerb", "prioritizeVerb", "preemptVerb"}


def test_the_shipped_policy_is_the_example_policy_byte_for_byte() -> None:
    """Helm reads no file outside the chart: files/ holds copies that must not drift."""
    assert (CHART / "files" / "policy.yaml").read_bytes() == (DEPLOY / "extender" / "policy.yaml").read_bytes()
    assert (CHART / "files" / "alert-rules.yaml").read_bytes() == (DEPLOY / "observability" / "alert-rules.yaml").read_bytes()
    docs, _ = rendered("default", "v1.30.6")
    policy_map = one(docs, "ConfigMap", "extender-policy", NAMESPACE)
    assert policy_map["data"]["policy.yaml"] == (DEPLOY / "extender" / "policy.yaml").read_text()


def test_the_alerts_are_deploy_observabilitys() -> None:
    docs, _ = rendered("service-network-policy", "v1.35.0")
    (rule,) = objects(docs, "PrometheusRule")
    shipped = yaml.safe_load((DEPLOY / "observability" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == shipped["spec"]
    assert rule["metadata"]["labels"]["role"] == "alert-rules"


def test_a_config_or_policy_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        docs, _ = render_chart(values, "v1.30.6")
        (deployment,) = objects(docs, "Deployment")
        annotation: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return annotation

    default = checksum({})
    assert checksum({"schedulerConfig": {"weight": 3}}) != default
    assert checksum({"policy": {"content": NO_PRIORITIES_POLICY}}) != default
    assert checksum({"resources": {"requests": {"cpu": "1"}}}) == default


def test_the_sidecar_serves_metrics_on_the_pod_ip_and_its_verbs_on_loopback() -> None:
    docs, _ = rendered("second-everything", "v1.35.0")
    pod, container = extender_container(docs)
    settings = settings_of(container)
    assert (settings.host, settings.probe_host, settings.probe_port) == ("127.0.0.1", "0.0.0.0", 8081)
    assert settings.validate() == []
    (monitor,) = objects(docs, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    env = env_of(container)
    assert env["EXTENDER_DECISION_LOG"] == "detail" and pod["priorityClassName"] == "system-cluster-critical"


def test_pod_settings_reach_the_pod_as_given() -> None:
    pod, _ = extender_container(rendered("service-everything", "v1.35.0")[0])
    assert pod["topologySpreadConstraints"] == [ZONE_SPREAD]  # a list replaces the chart's
    assert pod["affinity"] == VALUE_SETS["service-everything"]["affinity"]
    pod, _ = extender_container(rendered("second-everything", "v1.35.0")[0])
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"} and pod["tolerations"][0]["key"] == "dedicated"


def test_notes_say_how_to_get_the_scheduler_config_in_the_service_layout() -> None:
    _, notes = rendered("service-names", "v1.30.6")
    assert "kubectl -n extender-system get configmap extender-scheduler-config -o jsonpath=" in notes
    _, notes = rendered("service-tls-cert-manager", "v1.30.6")
    assert "extender-scheduler-client-tls" in notes


@pytest.mark.parametrize("values", [{}, VALUE_SETS["service-everything"], VALUE_SETS["second-everything"]],
                         ids=["default", "service-everything", "second-everything"])  # fmt: skip
def test_helm_lint_strict_passes(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.6")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == [], report
