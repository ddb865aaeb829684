"""Decision records: shape, bounds, sampling, detail, attribution per rule, observers."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from extender.cli import _parser
from extender.decisions import DecisionLog, DecisionLogOptions, Record
from extender.engine import ConfiguredRule, Policy, PodScope
from extender.engine.failures import error_score
from extender.engine.outcomes import FAILED, normalised_at
from extender.engine.scoring import normalised_column
from extender.kube.stores import NodeStore
from extender.sdk import NEUTRAL, NodeView
from extender.service import ExtenderService
from extender.settings import Settings
from tests.conftest import fixture
from tests.records import decision_records
from tests.test_engine import Explodes, ExplodesForPod, Rank, RejectNames

NOW = datetime(2026, 12, 7, 16, 55, 1, 123456, tzinfo=timezone.utc)
NAMES = [f"n{i}" for i in range(6)]
POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u-1"}}


def body(names: list[str] = NAMES) -> bytes:
    return json.dumps({"Pod": POD, "NodeNames": names}).encode()


def service(
    *predicates: ConfiguredRule[Any],
    priorities: tuple[ConfiguredRule[Any], ...] = (),
    observers: tuple[Any, ...] = (),
    **options: Any,
) -> ExtenderService:
    store = NodeStore()
    store.replace({name: NodeView(name, labels={"rank": str(i)}) for i, name in enumerate(NAMES)})
    policy = Policy(scope=PodScope(), predicates=predicates, priorities=priorities, digest="d1")
    return ExtenderService(
        policy, nodes=store, clock=lambda: NOW, decision_log=DecisionLogOptions(**options), observers=observers
    )


def logged(caplog: pytest.LogCaptureFixture) -> list[Record]:
    return decision_records(r.getMessage() for r in caplog.records if r.name == "extender.decisions")


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="extender.decisions")


def test_a_filter_record_has_the_contract_keys_and_counts_rejections_per_rule(caplog: pytest.LogCaptureFixture) -> None:
    s = service(
        ConfiguredRule("cond", RejectNames({"n1", "n2"}, "node(s) had condition X")),
        ConfiguredRule("pool", RejectNames({"n2", "n3"}, "node(s) not in pool", resolvable=True)),
        ConfiguredRule("trial", RejectNames({"n0"}, "node(s) on trial"), mode="shadow"),
    )
    reply = json.loads(s.filter(body([*NAMES, "ghost"])))
    (record,) = logged(caplog)
    assert list(record)[:8] == ["verb", "time", "pod", "mode", "policy", "nodes", "outcome", "tookMs"]
    assert record["verb"] == "filter" and record["time"] == "2026-12-07T16:55:01.123456Z"
    assert record["pod"] == {"namespace": "default", "name": "p", "uid": "u-1"}
    assert (record["mode"], record["policy"], record["nodes"], record["outcome"]) == ("names", "d1", 7, "answered")
    assert record["tookMs"] >= 0
    assert record["passed"] == 3 == len(reply["NodeNames"])
    # n2 is rejected by the first rule that rejects it (cond), never counted twice
    assert record["rejected"] == [
        {"rule": "cond", "reason": "node(s) had condition X", "resolvable": False, "count": 2, "nodes": ["n1", "n2"]},
        {"rule": "pool", "reason": "node(s) not in pool", "resolvable": True, "count": 1, "nodes": ["n3"]},
        {"rule": "extender:unknown-node", "reason": "node(s) unknown to the extender (not in its node cache)",
         "resolvable": False, "count": 1, "nodes": ["ghost"]},
    ]  # fmt: skip
    assert record["unknown"] == 1
    assert record["shadow"] == [{"rule": "trial", "wouldReject": 1}]
    assert record["failures"] == [] and "table" not in record


def test_attribution_holds_on_a_cache_hit(caplog: pytest.LogCaptureFixture) -> None:
    s = service(ConfiguredRule("a", RejectNames({"n1"})), ConfiguredRule("b", RejectNames({"n4"}, "node(s) b")))
    s.filter(body())
    s.filter(body())  # every verdict from the table kept by name
    first, second = logged(caplog)
    assert first["rejected"] == second["rejected"]
    assert [(g["rule"], g["nodes"]) for g in second["rejected"]] == [("a", ["n1"]), ("b", ["n4"])]


def test_on_error_deny_is_attributed_to_the_rule_and_always_logged(caplog: pytest.LogCaptureFixture) -> None:
    s = service(ConfiguredRule("boom", Explodes({"n1", "n2"}), on_error="deny"), sample=0.0)
    s.filter(body())
    (record,) = logged(caplog)
    assert record["rejected"] == [
        {"rule": "boom", "reason": "node(s) could not be checked by boom", "resolvable": False, "count": 2, "nodes": ["n1", "n2"]}
    ]
    assert record["failures"] == [{"rule": "boom", "count": 2, "message": "KeyError: 'missing thing'", "action": "denied"}]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["filter pod=default/p rule=boom raised on 2 evaluation(s), denied: KeyError: 'missing thing'"]


def test_a_rule_that_cannot_read_the_pod_rejects_every_node_in_its_name(caplog: pytest.LogCaptureFixture) -> None:
    s = service(ConfiguredRule("pod-reader", ExplodesForPod(), on_error="deny"))
    s.filter(body())
    (record,) = logged(caplog)
    assert [(g["rule"], g["count"]) for g in record["rejected"]] == [("pod-reader", 6)]
    assert record["failures"][0]["action"] == "denied"


def test_node_lists_are_bounded_counts_are_exact_and_the_table_is_bounded_too(caplog: pytest.LogCaptureFixture) -> None:
    s = service(ConfiguredRule("most", RejectNames(set(NAMES[1:]))), level="detail", max_nodes=2)
    s.filter(body())
    (record,) = logged(caplog)
    (group,) = record["rejected"]
    assert (group["count"], group["nodes"]) == (5, ["n1", "n2"])
    assert len(record["table"]["rows"]) == 2 and record["table"]["truncated"] == 4
    assert len(json.dumps(record)) < 2000


def test_detail_adds_every_rule_on_every_node(caplog: pytest.LogCaptureFixture) -> None:
    s = service(
        ConfiguredRule("a", RejectNames({"n1"}, "node(s) a")),
        ConfiguredRule("b", RejectNames({"n1", "n2"}, "node(s) b")),
        ConfiguredRule("boom", Explodes({"n3"}), on_error="allow"),
        level="detail",
    )
    s.filter(body())
    (record,) = logged(caplog)
    table = record["table"]
    assert table["rules"] == ["a", "b", "boom"] and table["truncated"] == 0
    rows = {row["node"]: row for row in table["rows"]}
    # n1: the engine stopped at a; the table shows b's verdict too
    assert rows["n1"]["verdicts"] == {"a": "node(s) a", "b": "node(s) b", "boom": "pass"}
    assert rows["n1"]["answer"] == "unresolvable" and rows["n0"]["answer"] == "passed"
    assert rows["n3"]["verdicts"]["boom"] == "error: KeyError: 'missing thing'" and rows["n3"]["answer"] == "passed"


def test_a_prioritize_record_names_the_best_node_and_each_priority_there(caplog: pytest.LogCaptureFixture) -> None:
    s = service(
        priorities=(
            ConfiguredRule("rank", Rank(), weight=3),
            ConfiguredRule("inverse", Rank(), mode="shadow"),
        ),
        level="detail",
    )
    reply = json.loads(s.prioritize(body([*NAMES[:4], "ghost"])))
    (record,) = logged(caplog)
    assert record["verb"] == "prioritize" and record["unknown"] == 1
    assert record["best"] == {"node": "n3", "score": 10, "rules": {"rank": 10.0}}
    assert record["best"]["score"] == max(h["Score"] for h in reply)
    assert record["shadow"] == [{"rule": "inverse", "wouldChange": 0, "wouldBest": "n3"}]
    rows = {row["node"]: row for row in record["table"]["rows"]}
    assert rows["n1"]["raw"] == {"rank": 1.0, "inverse": 1.0}
    assert rows["n1"]["normalised"] == {"rank": 3.3333, "inverse": 3.3333} and rows["n1"]["score"] == 3
    assert rows["ghost"] == {"node": "ghost", "verdicts": {}, "raw": {}, "normalised": {}, "score": 0, "answer": "scored"}
    assert record["table"]["rows"][0]["node"] == "n3", "highest score first"


def test_a_failed_priority_is_reported_and_scored_as_the_engine_scores_it(caplog: pytest.LogCaptureFixture) -> None:
    s = service(priorities=(ConfiguredRule("rank", Rank({"n2"}), on_error="allow"),), level="detail")
    s.prioritize(body(NAMES[:4]))
    (record,) = logged(caplog)
    assert record["failures"] == [{"rule": "rank", "count": 1, "message": "ValueError: bad rank", "action": "neutral score"}]
    rows = {row["node"]: row for row in record["table"]["rows"]}
    assert rows["n2"]["raw"] == {"rank": "error: ValueError: bad rank"}
    assert rows["n2"]["normalised"] == {"rank": 5.0} and rows["n2"]["score"] == 5


def test_normalised_at_matches_the_whole_column() -> None:
    for on_error in ("allow", "deny"):  # a failure's normalised score: 5 or 0
        _check_normalised_at([ConfiguredRule("r", Rank(), on_error=on_error)])


def _check_normalised_at(rules: list[ConfiguredRule[Any]]) -> None:
    for column in ([1.0, 3.0, 2.0], [1.0, None, 3.0], [NEUTRAL, 2.0, 4.0], [FAILED, 1.0, 1.0], [2.0, 2.0, 2.0]):
        whole = normalised_column(column, error_score(rules[0]), FAILED)
        assert [normalised_at(rules, {"r": column}, i)["r"] for i in range(3)] == [round(v, 4) for v in whole]


def test_sampling_logs_a_fraction_but_observers_get_every_record(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Record] = []
    s = service(ConfiguredRule("a", RejectNames({"n1"})), observers=(seen.append,), sample=0.5)
    draws = iter([0.1, 0.9, 0.4, 0.6])
    s.decisions = DecisionLog(s.decisions.options, s.decisions.observers, chance=lambda: next(draws))
    for _ in range(4):
        s.filter(body())
    assert len(logged(caplog)) == 2 and len(seen) == 4


def test_off_logs_nothing_and_builds_nothing_without_observers(caplog: pytest.LogCaptureFixture) -> None:
    s = service(ConfiguredRule("a", RejectNames({"n1"})), level="off")
    assert s.decisions.emit(lambda: pytest.fail("built a record nobody reads")) is None
    s.filter(body())
    s.prioritize(body())
    assert logged(caplog) == []


def test_an_observer_that_raises_is_logged_once_and_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(record: Record) -> None:
        calls.append(record["verb"])
        raise RuntimeError("observer bug")

    seen: list[Record] = []
    s = service(observers=(broken, seen.append))
    for _ in range(3):
        assert json.loads(s.filter(body()))["NodeNames"] == NAMES
    assert calls == ["filter"] * 3 and len(seen) == 3, "the next observer still gets every record"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "observer bug" in (errors[0].exc_text or "")


def test_out_of_scope_error_preempt_and_bind_records(caplog: pytest.LogCaptureFixture) -> None:
    rule: ConfiguredRule[Any] = ConfiguredRule("a", RejectNames(set()))
    ExtenderService(Policy(scope=PodScope(exclude_namespaces=frozenset({"default"})), predicates=(rule,))).filter(body())
    ExtenderService(Policy(scope=PodScope(), predicates=(rule,)), nodes=NodeStore(is_synced=lambda: False)).filter(body())
    s = service(ConfiguredRule("a", RejectNames({"n1"})))
    s.bind(fixture("kube-scheduler-v1.30", "node-cache", "00003-bind-gpu-1"))
    out_of_scope, error, bind = logged(caplog)
    assert (out_of_scope["outcome"], out_of_scope["nodes"]) == ("out-of-scope", 6)
    assert error["outcome"] == "error" and "not completed its first list" in error["error"]
    assert (bind["verb"], bind["node"], bind["outcome"]) == ("bind", "node-00002", "error")
    assert bind["error"].startswith("bind is not configured")


def test_settings_and_flags_configure_the_decision_log() -> None:
    env = Settings.from_env({"EXTENDER_DECISION_LOG": "detail", "EXTENDER_DECISION_SAMPLE": "0.25", "EXTENDER_DECISION_MAX_NODES": "5"})
    assert (env.decision_log, env.decision_sample, env.decision_max_nodes) == ("detail", 0.25, 5)
    bad = Settings(decision_log="loud", decision_sample=1.5, decision_max_nodes=-1).validate()
    assert bad == [
        "decision log 'loud': must be off, summary or detail",
        "decision sample 1.5: must be in 0..1",
        "decision max nodes -1: must be 0 (no bound) or more",
    ]
    args = _parser().parse_args(["serve", "--decision-log", "off", "--decision-sample", "0.5", "--decision-max-nodes", "3"])
    flags = env.with_overrides(vars(args))
    assert (flags.decision_log, flags.decision_sample, flags.decision_max_nodes) == ("off", 0.5, 3)


def test_a_reason_two_rules_give_is_still_attributed_exactly(caplog: pytest.LogCaptureFixture) -> None:
    same = "node(s) are not welcome"
    s = service(ConfiguredRule("first", RejectNames({"n1"}, same)), ConfiguredRule("second", RejectNames({"n2", "n3"}, same)))
    s.filter(body())
    s.filter(body())  # kept verdicts: counted by reason, where this reason has two rules
    for record in logged(caplog):
        assert [(g["rule"], g["count"], g["nodes"]) for g in record["rejected"]] == [("second", 2, ["n2", "n3"]), ("first", 1, ["n1"])]


def test_many_reasons_are_folded_per_rule_with_exact_counts(caplog: pytest.LogCaptureFixture) -> None:
    from extender.decisions.record import MAX_GROUPS, OTHER_REASONS, rejected_groups
    from extender.sdk import Rejection

    rejections = [(f"n{i}", Rejection(f"node(s) have {i} things"), "count") for i in range(MAX_GROUPS + 10)]
    groups = rejected_groups(rejections, {}, 3)
    assert len(groups) == MAX_GROUPS + 1 and sum(g["count"] for g in groups) == MAX_GROUPS + 10
    assert groups[-1]["reason"] == OTHER_REASONS and groups[-1]["count"] == 10 and len(groups[-1]["nodes"]) == 3


def test_observers_get_tables_on_a_sample_of_calls_without_logging_them(caplog: pytest.LogCaptureFixture) -> None:
    """The status page's --status-tables: a drawn call's record reaches the observers with its
    table; the summary line logged for it has none."""
    seen: list[Record] = []
    options = DecisionLogOptions(level="summary", observed_tables=0.5)
    draws = iter([0.3, 0.7])
    log = DecisionLog(options, (seen.append,), chance=lambda: next(draws))
    table = {"rules": ["a"], "rows": [], "truncated": 0}
    for _ in range(2):
        log.emit(lambda: {"verb": "filter"}, table=lambda: dict(table))
    assert [record.get("table") for record in seen] == [table, None]
    assert all("table" not in line for line in logged(caplog))
    quiet = DecisionLog(DecisionLogOptions(level="off", observed_tables=1.0))  # no observers: nothing built
    assert quiet.emit(lambda: pytest.fail("built a record nobody reads"), table=lambda: pytest.fail("no")) is None
    settings = Settings.from_env({"EXTENDER_STATUS_TABLES": "0.25", "EXTENDER_ADMIN_PORT": "8889"})
    assert settings.status_tables == 0.25 and Settings(status_tables=2).validate() == ["status tables 2: must be in 0..1"]
    from extender.web.app import decision_log_options

    assert decision_log_options(settings).observed_tables == 0.25
    assert decision_log_options(Settings(status_tables=0.25)).observed_tables == 0.0  # no status page, no tables
