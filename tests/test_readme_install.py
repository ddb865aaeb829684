"""The README's install guide names what the chart really installs.

Each ``helm install`` block is rendered offline with its ``--set`` values; the Deployments and
ConfigMaps the commands after it wait on or read must be among the objects rendered, and the
pod opt-in examples must reach the scheduler and the extended resource the chart configures.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from extender.schedconfig.validate import extended_resource_name_problem
from tests.helm_chart import NAMESPACE, RELEASE, render_chart
from tests.test_chart import embedded_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GUIDE = README.split("## Installing on a cluster", 1)[1].split("\n## ", 1)[0]
KUBE_VERSION = "v1.30.6"


def guide_blocks(language: str) -> list[str]:
    return [textwrap.dedent(m[1]) for m in re.finditer(rf"```{language}\n(.*?)```", GUIDE, re.S)]


def commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists (continuations joined, comments dropped)."""
    joined = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def set_values(args: list[str]) -> dict[str, Any]:
    """``--set a.b=c`` arguments as nested values (strings, true/false as booleans)."""
    values: dict[str, Any] = {}
    for flag, assignment in zip(args, args[1:]):
        if flag != "--set":
            continue
        path, text = assignment.split("=", 1)
        *parents, leaf = path.split(".")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = {"true": True, "false": False}.get(text, text)
    return values


def install_blocks() -> list[tuple[list[str], list[list[str]]]]:
    """(the helm install command, the commands after it) of each block that installs the chart."""
    found = []
    for block in guide_blocks("bash"):
        lines = commands(block)
        if lines and lines[0][:2] == ["helm", "install"]:
            found.append((lines[0], lines[1:]))
    return found


def test_the_guide_installs_both_layouts() -> None:
    layouts = {set_values(helm).get("layout", "secondScheduler") for helm, _ in install_blocks()}
    assert layouts == {"secondScheduler", "service"}


@pytest.mark.parametrize("block", install_blocks(), ids=lambda b: str(set_values(b[0]) or "defaults"))
def test_each_install_block_names_objects_the_chart_renders(block: tuple[list[str], list[list[str]]]) -> None:
    helm, after = block
    assert helm[2:4] == [RELEASE, "deploy/chart/extender"]
    assert helm[helm.index("--namespace") + 1] == NAMESPACE
    docs, _ = render_chart(set_values(helm), KUBE_VERSION)
    rendered = {(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if "namespace" in d["metadata"]}
    checked = 0
    for args in after:
        if args[:1] != ["kubectl"] or "-n" not in args:
            continue
        namespace = args[args.index("-n") + 1]
        if "rollout" in args:
            name = next(a for a in args if a.startswith("deployment/")).split("/", 1)[1]
            assert ("Deployment", namespace, name) in rendered, f"no Deployment {namespace}/{name} for {helm}"
            checked += 1
        if args[args.index("-n") + 2 : args.index("-n") + 4] == ["get", "configmap"]:
            name = args[args.index("-n") + 4]
            key = re.fullmatch(r"jsonpath=\{\.data\.(.*)\}", args[-1]) or re.search(r"\{\.data\.(.*)\}", " ".join(args))
            assert key, args
            configmap = rendered[("ConfigMap", namespace, name)]
            config = yaml.safe_load(configmap["data"][key[1].replace("\\.", ".")])
            assert config["kind"] == "KubeSchedulerConfiguration"
            checked += 1
    assert checked, f"the block after {helm} checks nothing"


def test_the_example_pod_asks_for_the_second_scheduler_the_chart_runs() -> None:
    docs, _ = render_chart({}, KUBE_VERSION)
    profile = embedded_config(docs)["profiles"][0]["schedulerName"]
    pod = yaml.safe_load((ROOT / "deploy/second-scheduler/example-pod.yaml").read_text())
    assert "deploy/second-scheduler/example-pod.yaml" in GUIDE
    assert pod["spec"]["schedulerName"] == profile == "extender-scheduler"
    kyverno = [yaml.safe_load(b) for b in guide_blocks("yaml") if "kyverno.io" in b]
    assert kyverno, "the guide's mutating policy example is gone"
    patch = kyverno[0]["spec"]["rules"][0]["mutate"]["patchStrategicMerge"]
    assert patch["spec"]["schedulerName"] == profile


def test_the_managed_resource_example_is_one_kube_scheduler_accepts_and_the_chart_registers() -> None:
    limits = [yaml.safe_load(b)["resources"]["limits"] for b in guide_blocks("yaml") if b.startswith("resources:")]
    assert limits, "the guide's managed resource example is gone"
    (name,) = limits[0]
    assert extended_resource_name_problem(name) is None
    values = {"layout": "service", "schedulerConfig": {"managedResources": [name], "ignoredByScheduler": True}}
    docs, _ = render_chart(values, KUBE_VERSION)
    extender = embedded_config(docs)["extenders"][0]
    assert extender["managedResources"] == [{"name": name, "ignoredByScheduler": True}]
