"""Every manifest deploy/ ships, as applied, against the Kubernetes OpenAPI schemas.

What is validated: each kustomize layout (the directories of deploy/ with a kustomization.yaml)
rendered by ``kubectl kustomize``, the component combinations the other deploy tests render,
and the plain YAML files applied as they are (``kubectl apply -f``). Every Kubernetes object
must pass the strict schemas (an unknown field is an error, as kubectl's field validation
makes it) of Kubernetes 1.24, 1.28 and the newest release kubernetes-validate ships.
kubernetes-validate 1.37 ships 1.25 onwards only: 1.24's definitions are kept in
tests/schemas/ (README there) and applied the way ``kubernetes_validate.validate`` applies its
own, which a test below checks against the library itself.

What is not a Kubernetes API object is checked another way: custom resources (no schema in
Kubernetes' OpenAPI; CUSTOM_RESOURCES says how), Prometheus rule files (promtool), and the
KubeSchedulerConfiguration files, embedded in ConfigMaps or copied to the control plane
(extender.schedconfig's checker, for the kube-scheduler release the layout pins).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from extender.schedconfig import KubeVersion, accepted_api_versions
from extender.schedconfig.versions import NEWEST_MINOR, OLDEST_MINOR
from tests.test_deploy import DEPLOY, FEATURE_RBAC, KUBE_SCHEDULER_VERSION, objects, render, render_overlay
from tests.test_deploy import scheduler_config_problems
from tests.test_scheduler_config import DEPLOY_CONFIGS

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = DEPLOY / "components"
SCHEMAS_1_24 = ROOT / "tests" / "schemas" / "kubernetes-v1.24" / "_definitions.json.gz"
SCHEMAS_1_24_SHA256 = "1bc5ae0a0ab04eb5a3bfded7367cc57d028d3e0b1628296287da7e10228763d7"
NEWEST = major_minor(kubernetes_validate.latest_version())
VERSIONS = ("1.24", "1.28", NEWEST)
KUBE_SCHEDULER_IMAGE = "registry.k8s.io/kube-scheduler"
MODERN = "kubernetes-1.27"  # the component holding the fields 1.24-1.26 do not know
#: the oldest minor release a component supports (the others: every one validated)
COMPONENT_OLDEST_MINOR = {MODERN: 27}

LAYOUTS = sorted(p.parent.name for p in DEPLOY.glob("*/kustomization.yaml"))
# (layout, components): what tests/test_deploy.py renders (each API feature alone, then all of
# them), tests/test_deploy_tls.py (tls on both Service layouts) and tests/test_deploy_security.py
# (the network policies), and the Kubernetes >= 1.27 component on every layout.
COMBINATIONS: list[tuple[str, tuple[str, ...]]] = [
    *(("extender", (c,)) for c in sorted(FEATURE_RBAC)),
    ("extender", tuple(sorted(FEATURE_RBAC))),
    ("extender", ("tls",)),
    ("node-cache", ("tls",)),
    ("extender", ("network-policy",)),
    ("node-cache", ("network-policy", "network-policy-api-server")),
    ("node-cache", ("tls", "network-policy", "network-policy-api-server")),
    *((layout, (MODERN,)) for layout in LAYOUTS),
]

# Custom resources: Kubernetes' OpenAPI has no schema for them. (apiVersion, kind) -> how they
# are checked instead.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): (
        "its spec is a Prometheus rule file: promtool checks the same groups "
        "(tests/test_deploy_observability.py, tests/load/test_recording_rules.py)"
    ),
    ("monitoring.coreos.com/v1", "PodMonitor"): "POD_MONITOR_SCHEMA here, and its port and selector find the extender",
}
# Plain files that are no Kubernetes object, by their top-level keys -> what checks them.
NOT_OBJECTS = {
    frozenset({"groups"}): "a Prometheus rule file: promtool check rules (the tests named above)",
    frozenset({"rule_files", "evaluation_interval", "tests"}): "promtool test rules (tests/test_deploy_observability.py)",
}
# The Prometheus Operator's PodMonitor (monitoring.coreos.com/v1 CRD), strict, for the fields
# deploy/ may use: a field outside this subset fails too (add it here from the CRD).
PROMETHEUS_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                   "matchExpressions": {"type": "array"}},
}  # fmt: skip
POD_MONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object", "required": ["selector", "podMetricsEndpoints"], "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"}, "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "selector": LABEL_SELECTOR, "sampleLimit": {"type": "integer"},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "port": {"type": "string"}, "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]}, "interval": PROMETHEUS_DURATION,
                        "scrapeTimeout": PROMETHEUS_DURATION, "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array"}, "metricRelabelings": {"type": "array"},
                        "params": {"type": "object"}}}},
            },
        },
    },
}  # fmt: skip


# -- what deploy/ applies -------------------------------------------------------------------------


def kustomization_files(kustomization: Path) -> set[Path]:
    """The files a kustomization.yaml reads (resources, patches, generators), not directories."""
    spec = yaml.safe_load(kustomization.read_text())
    names = [r for r in spec.get("resources", []) if r.endswith((".yaml", ".yml"))]
    names += [p["path"] for p in spec.get("patches", []) if "path" in p]
    for generator in (*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])):
        names += [f.split("=", 1)[-1] for f in generator.get("files", [])]
    return {(kustomization.parent / n).resolve() for n in names}


def plain_files() -> list[Path]:
    """The YAML files under deploy/ that no kustomization reads: applied (or copied) as they are."""
    kustomizations = sorted(DEPLOY.rglob("kustomization.yaml"))
    used = set().union(*(kustomization_files(k) for k in kustomizations))
    # deploy/chart/ holds Helm templates, not manifests: tests/test_chart.py renders and validates them.
    chart = DEPLOY / "chart"
    return sorted(
        p for p in DEPLOY.rglob("*.yaml")
        if p not in kustomizations and p.resolve() not in used and not p.is_relative_to(chart)
    )  # fmt: skip


def where_of(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata") or {}
    name = f"{metadata['namespace']}/{metadata.get('name')}" if "namespace" in metadata else metadata.get("name")
    return f"{doc.get('kind')} {name}"


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every layout as shipped, and every combination, by name (``node-cache+tls``)."""
    found = {layout: render(DEPLOY / layout) for layout in LAYOUTS}
    for layout, components in COMBINATIONS:
        name = "+".join((layout, *components))
        directory = tmp_path_factory.mktemp(name.replace("+", "-"))
        found[name] = render_overlay(directory, [DEPLOY / layout], [COMPONENTS / c for c in components])
    return found


@pytest.fixture(scope="module")
def kubernetes_objects(renders: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Each distinct Kubernetes API object deploy/ applies -> (the object, where it comes from)."""
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}

    def add(doc: dict[str, Any], where: str) -> None:
        if (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_RESOURCES or doc.get("kind") == "KubeSchedulerConfiguration":
            return
        assert "apiVersion" in doc and "kind" in doc, f"{where}: not a Kubernetes object, and not in NOT_OBJECTS"
        found.setdefault(json.dumps(doc, sort_keys=True), (doc, []))[1].append(f"{where}: {where_of(doc)}")

    for name, docs in renders.items():
        for doc in docs:
            add(doc, name)
    for path in plain_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and frozenset(doc) not in NOT_OBJECTS:
                add(doc, str(path.relative_to(DEPLOY)))
    return found


# -- validation -------------------------------------------------------------------------------------


@functools.cache
def vendored_definitions() -> dict[str, Any]:
    """Kubernetes 1.24's strict definitions (tests/schemas/README.md)."""
    raw = gzip.decompress(SCHEMAS_1_24.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SCHEMAS_1_24_SHA256, "tests/schemas/kubernetes-v1.24 was changed"
    definitions: dict[str, Any] = json.loads(raw)
    return definitions


def validate_with(definitions: dict[str, Any], doc: dict[str, Any]) -> None:
    """``kubernetes_validate.validate(doc, strict=True)`` over another ``_definitions.json``: the
    kind's definition found by its x-kubernetes-group-version-kind, Draft 2020-12. Both layouts
    the library has shipped: ``definitions`` (1.24's) and ``$defs`` with an ``$id`` (1.37's)."""
    group, _, version = doc["apiVersion"].rpartition("/")
    gvk = {"group": group, "version": version, "kind": doc["kind"]}
    section = "$defs" if "$defs" in definitions else "definitions"
    names = [n for n, d in definitions[section].items() if gvk in d.get("x-kubernetes-group-version-kind", [])]
    if not names:
        raise kubernetes_validate.SchemaNotFoundError(doc["kind"], "(vendored)", doc["apiVersion"])
    uri = definitions.get("$id", "_definitions.json")
    resource = Resource.from_contents(definitions, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    schema = {"$ref": f"{uri}#/{section}/{names[0]}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)


def schema_problem(doc: dict[str, Any], version: str) -> str | None:
    """Why Kubernetes ``version``'s strict schema rejects ``doc``, or None."""
    try:
        if version in {major_minor(v) for v in all_versions()}:
            kubernetes_validate.validate(doc, version, strict=True)
        else:
            assert version == "1.24", f"kubernetes-validate does not ship {version}"
            validate_with(vendored_definitions(), doc)
    except jsonschema.ValidationError as error:
        return f"{'.'.join(map(str, error.absolute_path)) or '(top level)'}: {error.message}"
    except kubernetes_validate.SchemaNotFoundError as error:
        return f"no schema: {error.message}"
    return None


def test_the_versions_are_1_24_1_28_and_the_newest_shipped() -> None:
    shipped = [major_minor(v) for v in all_versions()]
    assert NEWEST == shipped[-1] and int(NEWEST.split(".")[1]) >= 37
    assert "1.28" in shipped
    # 1.24 comes from tests/schemas/ only while the library lacks it (then drop the copy).
    assert "1.24" not in shipped


def applies_on(wheres: list[str], version: str) -> bool:
    """Whether an object found in these renders is applied on Kubernetes ``version``: it is
    unless only components for newer releases produce it."""
    minor = int(version.split(".")[1])
    components = [where.split(":")[0].split("+")[1:] for where in wheres]
    return any(all(COMPONENT_OLDEST_MINOR.get(c, 0) <= minor for c in used) for used in components)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_passes_the_strict_schema(
    version: str, kubernetes_objects: dict[str, tuple[dict[str, Any], list[str]]]
) -> None:
    problems = []
    for doc, wheres in kubernetes_objects.values():
        problem = schema_problem(doc, version) if applies_on(wheres, version) else None
        if problem:
            problems.append(f"{wheres[0]} (and {len(wheres) - 1} more): {problem}")
    assert problems == [], f"Kubernetes {version}:\n" + "\n".join(problems)


def test_the_validator_rejects_unknown_and_mistyped_fields(
    kubernetes_objects: dict[str, tuple[dict[str, Any], list[str]]],
) -> None:
    (deployment, _), *_ = [v for v in kubernetes_objects.values() if v[0]["kind"] == "Deployment"]
    unknown = json.loads(json.dumps(deployment))
    unknown["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    mistyped = json.loads(json.dumps(deployment))
    mistyped["spec"]["replicas"] = "two"
    for version in VERSIONS:
        assert "imagePullPolicyy" in (schema_problem(unknown, version) or ""), version
        assert (schema_problem(mistyped, version) or "").startswith("spec.replicas:"), version


def test_the_vendored_path_agrees_with_the_library(kubernetes_objects: dict[str, tuple[dict[str, Any], list[str]]]) -> None:
    """validate_with() on the library's own 1.28 definitions gives the library's verdicts."""
    path = files("kubernetes_validate") / "kubernetes-json-schema" / "v1.28.0-local-strict" / "_definitions.json"
    definitions = json.loads(path.read_text())
    samples = [doc for doc, _ in kubernetes_objects.values()]
    broken = json.loads(json.dumps(samples[0]))
    broken["metadata"]["nmae"] = "x"
    verdicts = []
    for doc in [*samples, broken]:
        try:
            validate_with(definitions, doc)
            ours = None
        except jsonschema.ValidationError as error:
            ours = error.message
        library = schema_problem(doc, "1.28")
        assert (ours is None) == (library is None), (ours, library)
        assert ours is None or (library or "").endswith(ours), (ours, library)
        verdicts.append(ours)
    assert verdicts[-1] and "nmae" in verdicts[-1] and not any(verdicts[:-1])


def test_1_24_is_what_moved_the_newer_fields_into_a_component(renders: dict[str, list[dict[str, Any]]]) -> None:
    """The layouts apply on 1.24; the Kubernetes >= 1.27 component adds exactly the two fields
    1.24 rejects (and that pass 1.28 and the newest, above) to every PDB and spread constraint."""
    for layout in LAYOUTS:
        base, modern = renders[layout], renders[f"{layout}+{MODERN}"]
        expected = json.loads(json.dumps(base))
        for doc in expected:
            if doc["kind"] == "PodDisruptionBudget":
                doc["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
            for constraint in doc.get("spec", {}).get("template", {}).get("spec", {}).get("topologySpreadConstraints", []):
                constraint["matchLabelKeys"] = ["pod-template-hash"]
        assert modern == expected, layout
        assert modern != base, f"{layout}: the component changed nothing"
        rejected = {schema_problem(d, "1.24") for d in modern if d not in base}
        assert all(p and ("unhealthyPodEvictionPolicy" in p or "matchLabelKeys" in p) for p in rejected), rejected


def test_every_layout_and_component_is_rendered() -> None:
    assert {"extender", "node-cache", "second-scheduler", "load-aware"} <= set(LAYOUTS)
    components = {p.parent.name for p in COMPONENTS.glob("*/kustomization.yaml")}
    assert components == {c for _, combination in COMBINATIONS for c in combination}


def test_the_plain_files_are_the_expected_kinds() -> None:
    kinds: dict[str, list[str]] = {}
    for path in plain_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                kind = NOT_OBJECTS.get(frozenset(doc)) and "not an object" or doc.get("kind", "?")
                kinds.setdefault(kind, []).append(str(path.relative_to(DEPLOY)))
    assert set(kinds) == {"KubeSchedulerConfiguration", "Pod", "PodMonitor", "PrometheusRule", "not an object"}, kinds
    assert "second-scheduler/example-pod.yaml" in kinds["Pod"]


# -- custom resources -------------------------------------------------------------------------------


def test_the_pod_monitor_is_well_formed_and_scrapes_the_extender(renders: dict[str, list[dict[str, Any]]]) -> None:
    monitors = [d for p in plain_files() for d in yaml.safe_load_all(p.read_text()) if d and d.get("kind") == "PodMonitor"]
    assert monitors
    for monitor in monitors:
        jsonschema.Draft202012Validator(POD_MONITOR_SCHEMA).validate(monitor)
        selector = monitor["spec"]["selector"]["matchLabels"]
        for layout in ("extender", "node-cache", "load-aware"):
            (pod,) = [
                d["spec"]["template"] for d in objects(renders[layout], "Deployment")
                if d["metadata"]["namespace"] == monitor["metadata"]["namespace"]
                and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]  # fmt: skip
            ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, f"{layout}: no container port named {endpoint['port']}"


def test_the_pod_monitor_schema_rejects_a_misspelt_field() -> None:
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x", "namespace": "y"},
           "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "http", "intervall": "30s"}]}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.Draft202012Validator(POD_MONITOR_SCHEMA).validate(bad)


# -- KubeSchedulerConfiguration -------------------------------------------------------------------


def embedded_scheduler_configs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, Any, KubeVersion]]:
    """(where, config, the release it runs on) for each KubeSchedulerConfiguration in a ConfigMap:
    the release is the kube-scheduler image of the pods that mount that ConfigMap."""
    for configmap in objects(docs, "ConfigMap"):
        for key, text in (configmap.get("data") or {}).items():
            config = yaml.safe_load(text)
            if not (isinstance(config, dict) and config.get("kind") == "KubeSchedulerConfiguration"):
                continue
            name = configmap["metadata"]["name"]
            pods = [
                d["spec"]["template"]["spec"] for d in objects(docs, "Deployment")
                if any((v.get("configMap") or {}).get("name") == name for v in d["spec"]["template"]["spec"]["volumes"])
            ]  # fmt: skip
            images = {c["image"] for pod in pods for c in pod["containers"] if c["image"].startswith(KUBE_SCHEDULER_IMAGE + ":")}
            assert len(images) == 1, f"ConfigMap {name}: mounted by kube-scheduler images {images}"
            yield f"ConfigMap {name} {key}", config, KubeVersion.parse(images.pop().rsplit(":", 1)[1])


def test_embedded_scheduler_configs_pass_for_the_release_the_layout_pins(renders: dict[str, list[dict[str, Any]]]) -> None:
    found = []
    for name, docs in renders.items():
        for where, config, version in embedded_scheduler_configs(docs):
            assert scheduler_config_problems(config, version) == [], f"{name}: {where} on kube-scheduler {version}"
            found.append((name.split("+")[0], version))
    assert found and {layout for layout, _ in found} == {"second-scheduler"}
    # tests/test_deploy.py checks the hand-written configs as this release: the one pinned.
    assert {version for _, version in found} == {KUBE_SCHEDULER_VERSION}


def test_control_plane_scheduler_configs_pass_for_every_release_taking_their_api_version() -> None:
    """The --config files copied to the control plane pin no release: every one that accepts their
    apiVersion (tests/test_scheduler_config.py checks deploy/*/ at 1.25, 1.30, 1.35; this the rest)."""
    paths = [p for p in plain_files() if "KubeSchedulerConfiguration" in p.read_text() and p not in DEPLOY_CONFIGS]
    assert paths == [COMPONENTS / "tls" / "scheduler-config.yaml"]
    for path in paths:
        config = yaml.safe_load(path.read_text())
        releases = [KubeVersion(m) for m in range(OLDEST_MINOR, NEWEST_MINOR + 1)]
        taking = [v for v in releases if config["apiVersion"] in accepted_api_versions(v)]
        assert taking and taking[-1].minor == NEWEST_MINOR, path
        for version in taking:
            assert scheduler_config_problems(config, version) == [], (path, version)
