"""``extender scheduler-config``: the KubeSchedulerConfiguration it renders, and the checker.

The renderer takes its verbs from the policy, its apiVersion from the kube-scheduler
release; the checker (extender.schedconfig.problems) refuses what kube-scheduler's strict
decoding and validation refuse, naming the field. The rendered configs equal the
hand-written ones under deploy/ for the same setups, and those pass the checker too.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from extender.cli import main
from extender.engine import Policy
from extender.policy import default_policy_text, load_policy, load_policy_text
from extender.schedconfig import KubeVersion, Setup, VersionError, accepted_api_versions, problems, render

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
GROUP = "kubescheduler.config.k8s.io"
SERVICE_URL = "http://extender.extender-system.svc:8888/scheduler"
SIDECAR_URL = "http://127.0.0.1:8888/scheduler"
V130 = KubeVersion(30)

PREDICATE = '{type: node-condition, params: {conditions: [{type: Ready, status: "True", match: NotEqual}]}}'
PRIORITY = "{type: node-metadata, params: {key: rank, strategy: highest}}"
FILTER_ONLY = f"predicates: [{PREDICATE}]"
PRIORITIES_ONLY = f"priorities: [{PRIORITY}]"
EVERYTHING = f"predicates: [{PREDICATE}]\npriorities: [{PRIORITY}]\nbind: {{enabled: true}}"


def policy(text: str) -> Policy:
    return load_policy_text(text, "policy.yaml")


def rendered(text: str = EVERYTHING, **setup: Any) -> dict[str, Any]:
    return render(policy(text), Setup(**{"url": SERVICE_URL, "version": V130, **setup})).config


def extender_of(config: dict[str, Any]) -> dict[str, Any]:
    (extender,) = config["extenders"]
    assert isinstance(extender, dict)
    return extender


def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, policy_text: str, *flags: str) -> tuple[int, str, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text)
    code = main(["scheduler-config", "--url", SERVICE_URL, "--policy", str(path), *flags])
    out, err = capsys.readouterr()
    return code, out, err


# -- versions ------------------------------------------------------------------------------------

EXPECTED_API_VERSION = {22: "v1beta2", 23: "v1beta3", 24: "v1beta3", **{minor: "v1" for minor in range(25, 36)}}


@pytest.mark.parametrize("minor", range(22, 36))
def test_every_release_gets_the_newest_api_version_it_decodes(minor: int) -> None:
    version = KubeVersion.parse(f"1.{minor}")
    config = rendered(version=version)
    assert config["apiVersion"] == f"{GROUP}/{EXPECTED_API_VERSION[minor]}"
    assert problems(config, version) == []
    if minor < 25:  # v1 is refused there (1.22's v1 is the legacy Policy kind)
        assert problems({**config, "apiVersion": f"{GROUP}/v1"}, version) == [
            f"apiVersion: kube-scheduler 1.{minor} accepts "
            f"{GROUP}/{' or '.join(a.rsplit('/', 1)[1] for a in accepted_api_versions(version))}, "
            f"not '{GROUP}/v1'"
        ]


def test_which_api_versions_each_release_decodes() -> None:
    # k8s.io/kube-scheduler tags v0.22.0..v0.35.0, config/: v1beta2 1.22-1.27, v1beta3 1.23-1.28.
    table = {minor: [a.rsplit("/", 1)[1] for a in accepted_api_versions(KubeVersion(minor))] for minor in range(22, 36)}
    assert table[22] == ["v1beta2", "v1beta1"]
    assert table[23] == table[24] == ["v1beta3", "v1beta2"]
    assert table[25] == table[26] == table[27] == ["v1", "v1beta3", "v1beta2"]
    assert table[28] == ["v1", "v1beta3"]
    assert all(table[minor] == ["v1"] for minor in range(29, 36))


@pytest.mark.parametrize(("text", "minor"), [("1.30", 30), ("v1.30.6", 30), ("1.24.0", 24), ("1.33.1-eks.2", 33)])
def test_version_spellings(text: str, minor: int) -> None:
    assert KubeVersion.parse(text) == KubeVersion(minor)


@pytest.mark.parametrize(
    ("text", "says"),
    [("1.21", "1.21 is not supported (1.22 to 1.35)"), ("1.36", "1.36 is newer than this extender knows"),
     ("2.0", "expected a Kubernetes version"), ("latest", "expected a Kubernetes version")],
)  # fmt: skip
def test_unsupported_versions_are_refused_clearly(
    text: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(VersionError, match=re.escape(says)):
        KubeVersion.parse(text)
    code, out, err = cli(capsys, tmp_path, FILTER_ONLY, "--k8s-version", text)
    assert (code, out) == (2, "") and says in err


def test_keys_that_only_some_versions_decode() -> None:
    base = rendered(version=KubeVersion(27))
    assert problems({**base, "delayCacheUntilActive": True}, KubeVersion(27)) == [
        "(top level): unknown key 'delayCacheUntilActive'"
    ]
    v128 = rendered(version=KubeVersion(28))
    assert problems({**v128, "delayCacheUntilActive": True}, KubeVersion(28)) == []
    v125 = rendered(version=KubeVersion(25))
    scored = {**v125, "profiles": [{"schedulerName": "default-scheduler", "percentageOfNodesToScore": 50}]}
    assert problems(scored, KubeVersion(25)) == ["profiles[0]: unknown key 'percentageOfNodesToScore'"]
    assert problems({**scored, "apiVersion": f"{GROUP}/v1"}, KubeVersion(26)) == []
    beta2 = {**rendered(version=KubeVersion(22)), "healthzBindAddress": "0.0.0.0:10251"}
    assert problems(beta2, KubeVersion(22)) == []
    beta3 = {**rendered(version=KubeVersion(24)), "healthzBindAddress": "0.0.0.0:10251"}
    assert problems(beta3, KubeVersion(24)) == ["(top level): unknown key 'healthzBindAddress'"]


# -- verbs from the policy -------------------------------------------------------------------------


def test_a_filter_only_policy_registers_no_prioritize_and_no_weight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extender = extender_of(rendered(FILTER_ONLY))
    assert extender["filterVerb"] == "filter" and extender["preemptVerb"] == "preempt"
    assert "prioritizeVerb" not in extender and "weight" not in extender and "bindVerb" not in extender
    # A weight that would be refused with prioritizeVerb is irrelevant without it.
    code, out, err = cli(capsys, tmp_path, FILTER_ONLY, "--weight", "0")
    assert (code, err) == (0, "")
    assert "prioritizeVerb" not in yaml.safe_load(out)["extenders"][0]
    assert "# No prioritizeVerb (and no weight): the policy has no priorities" in out
    # The embedded default policy is filter-only too.
    assert "prioritizeVerb" not in extender_of(rendered(default_policy_text()))


def test_a_priorities_only_policy_registers_neither_filter_nor_preempt() -> None:
    extender = extender_of(rendered(PRIORITIES_ONLY, weight=3))
    assert {k: v for k, v in extender.items() if k.endswith("Verb")} == {"prioritizeVerb": "prioritize"}
    assert extender["weight"] == 3


def test_names_mode_with_bind_and_full_nodes_without(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = extender_of(rendered(EVERYTHING))
    assert (names["bindVerb"], names["nodeCacheCapable"]) == ("bind", True)
    full = extender_of(rendered(EVERYTHING, names_mode=False))
    assert "bindVerb" not in full and full["nodeCacheCapable"] is False
    code, out, _ = cli(capsys, tmp_path, EVERYTHING, "--mode", "full-nodes", "--k8s-version", "1.33")
    assert code == 0
    assert "# No bindVerb: the policy enables bind, but full-node mode registers none" in out
    assert "kubernetes#141781" in out  # 1.33+ full-node scoring bug
    policy_without_bind = EVERYTHING.replace("bind: {enabled: true}", "")
    assert "bindVerb" not in extender_of(rendered(policy_without_bind))


def test_a_policy_that_needs_no_verb_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, tmp_path, "{}")
    assert (code, out) == (2, "")
    assert "no predicates, priorities or bind: registering it would change nothing" in err


def test_a_policy_that_does_not_load_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, tmp_path, "predicates: [{type: no-such-rule}]")
    assert (code, out) == (1, "") and "1 problem(s)" in err


def test_options_land_where_kube_scheduler_reads_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(
        capsys, tmp_path, EVERYTHING, "--k8s-version", "v1.30.6", "--weight", "5", "--http-timeout", "1m30s",
        "--ignorable", "--managed-resource", "example.com/gpu-memory", "--managed-resource", "example.com/fpga",
        "--ignored-by-scheduler", "--kubeconfig", "/etc/kubernetes/scheduler.conf",
    )  # fmt: skip
    assert (code, err) == (0, "")
    config = yaml.safe_load(out)
    assert config == rendered(
        EVERYTHING, weight=5, http_timeout="1m30s", ignorable=True, ignored_by_scheduler=True,
        managed_resources=("example.com/gpu-memory", "example.com/fpga"), kubeconfig="/etc/kubernetes/scheduler.conf",
    )  # fmt: skip
    extender = extender_of(config)
    assert (extender["weight"], extender["httpTimeout"], extender["ignorable"]) == (5, "1m30s", True)
    assert extender["managedResources"] == [
        {"name": "example.com/gpu-memory", "ignoredByScheduler": True},
        {"name": "example.com/fpga", "ignoredByScheduler": True},
    ]
    assert config["clientConnection"] == {"kubeconfig": "/etc/kubernetes/scheduler.conf"}
    assert out.startswith("# kube-scheduler --config file for Kubernetes 1.30")
    assert "can't find NodeResourcesFitArgs in plugin config" in out  # ignoredByScheduler's caveat


def test_a_second_scheduler_takes_its_own_lease() -> None:
    config = rendered(scheduler_name="gpu-scheduler", lease_namespace="extender-system")
    assert config["profiles"] == [{"schedulerName": "gpu-scheduler"}]
    assert config["leaderElection"] == {
        "leaderElect": True, "resourceLock": "leases", "resourceName": "gpu-scheduler",
        "resourceNamespace": "extender-system",
    }  # fmt: skip
    assert rendered(scheduler_name="gpu-scheduler", leader_elect=False)["leaderElection"] == {"leaderElect": False}
    assert rendered()["leaderElection"] == {"leaderElect": True}  # the default scheduler's own lease


# -- TLS ---------------------------------------------------------------------------------------------

HTTPS_URL = "https://extender.extender-system.svc:8443/scheduler"


@pytest.mark.parametrize(
    ("flags", "tls"),
    [
        ([], None),  # https with the system roots: verified, no tlsConfig needed
        (["--tls-ca", "/etc/kubernetes/extender/ca.crt"], {"caFile": "/etc/kubernetes/extender/ca.crt"}),
        (["--tls-ca", "/ca.crt", "--tls-server-name", "extender.extender-system.svc", "--client-cert", "/c.crt",
          "--client-key", "/c.key"],
         {"serverName": "extender.extender-system.svc", "caFile": "/ca.crt", "certFile": "/c.crt", "keyFile": "/c.key"}),
        (["--tls-insecure"], {"insecure": True}),
    ],
)  # fmt: skip
def test_tls_variants(flags: list[str], tls: dict[str, Any] | None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scheduler-config", "--url", HTTPS_URL, *flags]) == 0
    out = capsys.readouterr().out
    extender = extender_of(yaml.safe_load(out))
    assert extender.get("tlsConfig") == tls
    # enableHTTPS without a CA would switch verification off (protocol.md §2.2): never written.
    assert "enableHTTPS" not in extender
    if tls is None or "caFile" not in tls:  # the comments say how the certificate is (not) verified
        assert "verify" in out.split("apiVersion:", 1)[0]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--url", SERVICE_URL, "--tls-ca", "/ca.crt"], "the TLS options need an https:// URL"),
        (["--url", HTTPS_URL, "--client-cert", "/c.crt"], "--client-cert and --client-key go together"),
        (["--url", HTTPS_URL, "--tls-ca", "/ca.crt", "--tls-insecure"], "not allowed with argument"),
    ],
)
def test_tls_flags_that_cannot_work_exit_2(flags: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["scheduler-config", *flags])
    except SystemExit as exc:  # argparse's usage errors (mutually exclusive flags)
        code = int(str(exc.code))
    out, err = capsys.readouterr()
    assert (code, out) == (2, "") and says in err


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        # Found with a real kube-scheduler: it posts to http://127.0.0.1:8888/filter, a 404 on every call.
        (["--url", "http://127.0.0.1:8888"], "use http://127.0.0.1:8888/scheduler"),
        (["--url", "http://127.0.0.1:8888/"], "not /: every call would be a 404"),
        (["--url", "http://127.0.0.1:8888/extender"], "answers under /scheduler (its --url-prefix), not /extender"),
        (["--url", "http://127.0.0.1:8888/scheduler", "--url-prefix", "/placement"], "use http://127.0.0.1:8888/placement"),
    ],
)  # fmt: skip
def test_a_url_whose_path_serve_does_not_answer_exits_2(flags: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["scheduler-config", *flags])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "") and says in err


@pytest.mark.parametrize(
    ("flags", "url"),
    [
        (["--url", "http://127.0.0.1:8888/scheduler/"], "http://127.0.0.1:8888/scheduler/"),  # kube-scheduler trims the slash
        (["--url", "http://127.0.0.1:8888/placement", "--url-prefix", "placement/"], "http://127.0.0.1:8888/placement"),
        (["--url", "http://127.0.0.1:8888", "--url-prefix", ""], "http://127.0.0.1:8888"),  # serve --url-prefix ""
    ],
)  # fmt: skip
def test_a_url_ending_with_serves_prefix_is_written_as_given(flags: list[str], url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scheduler-config", *flags]) == 0
    assert extender_of(yaml.safe_load(capsys.readouterr().out))["urlPrefix"] == url


# -- the checker: each rule rejects its bad case, naming the field -----------------------------------


def _set(path: str, value: Any) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = config
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return mutate


BAD_CASES: list[tuple[str, Any, str]] = [
    ("misspelt key", _set("extenders.0.enableHttps", True), "extenders[0]: unknown key 'enableHttps'"),
    ("extenders under a profile", _set("profiles.0.extenders", []), "profiles[0]: unknown key 'extenders'"),
    ("wrong case", _set("extenders.0.URLPrefix", SERVICE_URL), "extenders[0]: unknown key 'URLPrefix'"),
    ("weight 0 with prioritize", _set("extenders.0.weight", 0), "extenders[0].weight: must have a positive weight"),
    ("weight negative", _set("extenders.0.weight", -2), "extenders[0].weight: must have a positive weight"),
    ("weight a string", _set("extenders.0.weight", "2"), "extenders[0].weight: must be an integer"),
    ("weight a float", _set("extenders.0.weight", 1.5), "extenders[0].weight: must be an integer"),
    ("two binders", lambda c: c["extenders"].append({**c["extenders"][0], "managedResources": []}),
     "only one extender can implement bind"),
    ("no domain", _set("extenders.0.managedResources", [{"name": "gpu-memory"}]),
     "extenders[0].managedResources[0].name: 'gpu-memory' is an invalid extended resource name"),
    ("kubernetes.io", _set("extenders.0.managedResources", [{"name": "kubernetes.io/gpu"}]),
     "extenders[0].managedResources[0].name: 'kubernetes.io/gpu' is an invalid extended resource name"),
    ("*.kubernetes.io", _set("extenders.0.managedResources", [{"name": "example.kubernetes.io/gpu"}]),
     "extenders[0].managedResources[0].name: 'example.kubernetes.io/gpu' is an invalid extended resource name"),
    ("requests.", _set("extenders.0.managedResources", [{"name": "requests.example.com/gpu"}]),
     "extenders[0].managedResources[0].name: 'requests.example.com/gpu' is an invalid extended resource name"),
    ("upper-case domain", _set("extenders.0.managedResources", [{"name": "Example.com/gpu"}]),
     "extenders[0].managedResources[0].name: 'Example.com/gpu' is not a qualified name"),
    ("two slashes", _set("extenders.0.managedResources", [{"name": "example.com/a/b"}]),
     "extenders[0].managedResources[0].name: 'example.com/a/b' is not a qualified name"),
    ("name part too long", _set("extenders.0.managedResources", [{"name": "example.com/" + "g" * 64}]),
     "no more than 63 characters"),
    ("duplicate", _set("extenders.0.managedResources", [{"name": "example.com/a"}, {"name": "example.com/a"}]),
     "extenders[0].managedResources[1].name: 'example.com/a': duplicate extender managed resource name"),
    ("managed key", _set("extenders.0.managedResources", [{"name": "example.com/a", "ignored": True}]),
     "extenders[0].managedResources[0]: unknown key 'ignored'"),
    ("ignoredByScheduler string", _set("extenders.0.managedResources", [{"name": "example.com/a", "ignoredByScheduler": "yes"}]),
     "extenders[0].managedResources[0].ignoredByScheduler: must be a boolean"),
    ("timeout a number", _set("extenders.0.httpTimeout", 5), "extenders[0].httpTimeout: 5 is not a duration string"),
    ("timeout in words", _set("extenders.0.httpTimeout", "5 seconds"), "extenders[0].httpTimeout: '5 seconds' is not a duration"),
    ("timeout negative", _set("extenders.0.httpTimeout", "-1s"), "extenders[0].httpTimeout: '-1s' is negative"),
    ("url without scheme", _set("extenders.0.urlPrefix", "extender:8888/scheduler"),
     "extenders[0].urlPrefix: 'extender:8888/scheduler' is not an http(s) URL"),
    ("url missing", lambda c: c["extenders"][0].pop("urlPrefix"), "extenders[0].urlPrefix: None is not an http(s) URL"),
    ("bool as string", _set("extenders.0.nodeCacheCapable", "true"), "extenders[0].nodeCacheCapable: must be a boolean"),
    ("verb not a string", _set("extenders.0.filterVerb", True), "extenders[0].filterVerb: must be a string"),
    ("tls key", _set("extenders.0.tlsConfig", {"CAFile": "/ca"}), "extenders[0].tlsConfig: unknown key 'CAFile'"),
    ("insecure with CA", _set("extenders.0.tlsConfig", {"insecure": True, "caFile": "/ca"}),
     "extenders[0].tlsConfig: insecure with caFile/caData fails kube-scheduler's start-up"),
    ("caData not base64", _set("extenders.0.tlsConfig", {"caData": "-----BEGIN CERTIFICATE-----"}),
     "extenders[0].tlsConfig.caData: must be base64"),
    ("kind", _set("kind", "KubeSchedulerConfig"), "kind: must be KubeSchedulerConfiguration"),
    ("api group", _set("apiVersion", "kubescheduler.config.k8s.io/v2"), "apiVersion: kube-scheduler 1.30 accepts"),
    ("percentage", _set("percentageOfNodesToScore", 101), "percentageOfNodesToScore: not in valid range [0-100]"),
    ("parallelism", _set("parallelism", 0), "parallelism: should be an integer value greater than zero"),
    ("backoff", _set("podMaxBackoffSeconds", 0), "podMaxBackoffSeconds: must be an integer greater than or equal"),
    ("profiles unnamed", _set("profiles", [{"schedulerName": "a"}, {}]), "profiles[1].schedulerName: required"),
    ("profiles duplicate", _set("profiles", [{"schedulerName": "a"}, {"schedulerName": "a"}]),
     "profiles[1].schedulerName: duplicate of profiles[0].schedulerName 'a'"),
    ("leader election key", _set("leaderElection.leaseNamespace", "x"), "leaderElection: unknown key 'leaseNamespace'"),
    ("client connection key", _set("clientConnection", {"kubeConfig": "/x"}), "clientConnection: unknown key 'kubeConfig'"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mutate", "says"), BAD_CASES, ids=[case for case, _, _ in BAD_CASES])
def test_each_rule_rejects_its_bad_case_naming_the_field(case: str, mutate: Any, says: str) -> None:
    config = rendered(EVERYTHING)
    assert problems(config, V130) == []
    bad = copy.deepcopy(config)
    mutate(bad)
    found = problems(bad, V130)
    assert any(says in problem for problem in found), (case, found)


def test_valid_edge_cases_pass() -> None:
    config = rendered(EVERYTHING)
    for mutate in (
        _set("extenders.0.httpTimeout", "0"),
        _set("extenders.0.httpTimeout", "1.5s"),
        _set("extenders.0.httpTimeout", "1h2m3s500ms"),
        _set("extenders.0.managedResources", [{"name": "example.com/a_b.c-D"}, {"name": "nvidia.com/gpu"}]),
        _set("extenders.0.tlsConfig", {"caData": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "serverName": "x"}),
        _set("percentageOfNodesToScore", 100),
        _set("profiles", [{"schedulerName": "a"}, {"schedulerName": "b"}]),
        lambda c: c.pop("profiles"),  # defaulted to one default-scheduler profile
        lambda c: c["extenders"][0].pop("weight") and c["extenders"][0].pop("prioritizeVerb"),
    ):
        ok = copy.deepcopy(config)
        mutate(ok)
        assert problems(ok, V130) == [], ok


def test_a_rendered_config_that_would_not_validate_exits_2_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, tmp_path, EVERYTHING, "--weight", "0", "--http-timeout", "soon", "--managed-resource", "gpu",
    )  # fmt: skip
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("extender scheduler-config: extenders[0].") for line in lines)
    assert [line.split(": ")[1] for line in lines] == [
        "extenders[0].weight", "extenders[0].httpTimeout", "extenders[0].managedResources[0].name",
    ]  # fmt: skip


# -- deploy/: the hand-written configurations --------------------------------------------------------

DEPLOY_CONFIGS = sorted(DEPLOY.glob("*/scheduler-config*.yaml"))


@pytest.mark.parametrize("path", DEPLOY_CONFIGS, ids=[str(p.relative_to(DEPLOY)) for p in DEPLOY_CONFIGS])
def test_the_deploy_configs_pass_the_checker(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    # deploy/second-scheduler pins kube-scheduler v1.30.6; v1 is the same from 1.25 on.
    for minor in (25, 30, 35):
        assert problems(config, KubeVersion(minor)) == [], (path, minor)


# (the deploy file, policy, its setup): the same setup rendered must give the same config.
DEPLOY_SETUPS: list[tuple[str, str, dict[str, Any]]] = [
    ("extender/scheduler-config.yaml", "extender/policy.yaml",
     {"url": SERVICE_URL, "names_mode": False, "kubeconfig": "/etc/kubernetes/scheduler.conf"}),
    ("node-cache/scheduler-config.yaml", "node-cache/policy.yaml",
     {"url": SERVICE_URL, "kubeconfig": "/etc/kubernetes/scheduler.conf"}),
    ("load-aware/scheduler-config.yaml", "load-aware/policy.yaml",
     {"url": SERVICE_URL, "kubeconfig": "/etc/kubernetes/scheduler.conf"}),
    ("second-scheduler/scheduler-config.yaml", "second-scheduler/policy.yaml",
     {"url": SIDECAR_URL, "scheduler_name": "extender-scheduler", "lease_namespace": "extender-system"}),
    ("second-scheduler/scheduler-config-full-nodes.yaml", "second-scheduler/policy.yaml",
     {"url": SIDECAR_URL, "names_mode": False, "scheduler_name": "extender-scheduler",
      "lease_namespace": "extender-system"}),
]  # fmt: skip


@pytest.mark.parametrize(("config_path", "policy_path", "setup"), DEPLOY_SETUPS, ids=[c for c, _, _ in DEPLOY_SETUPS])
def test_rendering_the_deploy_setups_gives_the_hand_written_configs(
    config_path: str, policy_path: str, setup: dict[str, Any]
) -> None:
    hand_written = yaml.safe_load((DEPLOY / config_path).read_text())
    generated = render(load_policy(DEPLOY / policy_path), Setup(version=V130, **setup))
    assert generated.config == hand_written
    assert set(DEPLOY_CONFIGS) == {DEPLOY / c for c, _, _ in DEPLOY_SETUPS}, "a deploy config without a setup here"


def test_the_cli_prints_what_render_returns(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scheduler-config", "--url", SIDECAR_URL, "--policy", str(DEPLOY / "second-scheduler" / "policy.yaml"),
            "--k8s-version", "1.30", "--scheduler-name", "extender-scheduler", "--lease-namespace", "extender-system"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == yaml.safe_load((DEPLOY / "second-scheduler" / "scheduler-config.yaml").read_text())


def test_the_readme_example_is_what_the_command_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Generating the scheduler configuration", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    (command,) = [code for lang, code in blocks if lang == "bash"]
    (expected,) = [code for lang, code in blocks if lang == "yaml"]
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == [".venv/bin/extender", "scheduler-config"]
    monkeypatch.chdir(ROOT)  # the command's --policy is relative to the checkout
    assert main(argv[1:]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(expected)
    assert "extenders[0].weight: must have a positive weight applied to it" in section


RECORDED = sorted((ROOT / "tests" / "fixtures").glob("kube-scheduler-v*/*"))


@pytest.mark.parametrize("folder", RECORDED, ids=[f"{p.parent.name}/{p.name}" for p in RECORDED])
def test_the_verbs_reach_the_paths_and_modes_recorded_from_kube_scheduler(folder: Path) -> None:
    # tests/fixtures/README.md: a real kube-scheduler called an extender at 127.0.0.1:18888/scheduler,
    # in full-node mode (filter, prioritize, preempt) and names mode (filter, prioritize, bind).
    version = KubeVersion.parse(folder.parent.name.removeprefix("kube-scheduler-"))
    config = rendered(url="http://127.0.0.1:18888/scheduler", version=version, names_mode=folder.name == "node-cache")
    assert problems(config, version) == []
    extender = extender_of(config)
    # kube-scheduler: strings.TrimRight(urlPrefix, "/") + "/" + verb (protocol.md §2.1)
    urls = {extender["urlPrefix"].rstrip("/") + "/" + verb for key, verb in extender.items() if key.endswith("Verb")}
    headers = sorted(folder.glob("*.headers.txt"))
    assert headers
    for path in headers:
        method, target = path.read_text().splitlines()[0].split()[:2]
        assert method == "POST" and f"http://127.0.0.1:18888{target}" in urls, path.name
    for path in folder.glob("*-filter-*.request.json"):
        body = json.loads(path.read_text())
        assert (body["NodeNames"] is not None) is extender["nodeCacheCapable"], path.name
