"""Kubernetes Events of the extender's decisions (extender/kube/events.py) against the fake API
server: what arrives, combined per pod, and the limits (per pod, overall, the queue)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from extender.kube.client import KubeClient
from extender.kube.config import ClusterConfig, StaticToken
from extender.kube.events import Combiner, EventOptions, EventRecorder, TokenBucket, event_body
from extender.status.summary import summary_line
from tests.conftest import FIXTURES, eventually
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.live import write_kubeconfig
from tests.live_server import ROOT, running_server

WHEN = datetime(2026, 12, 7, 16, 55, 1, 123456, tzinfo=timezone.utc)


def record(verb: str, name: str = "gpu-1", uid: str = "749a", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "verb": verb, "time": "2026-12-07T16:55:01.123456Z", "pod": {"namespace": "default", "name": name, "uid": uid},
        "mode": "names", "policy": "abc", "nodes": 8, "outcome": "answered", "tookMs": 0.4,
    }  # fmt: skip
    if verb == "filter":
        base.update(passed=5, unknown=0, rejected=[
            {"rule": "node-condition", "reason": "node(s) had condition KernelDeadlock=True", "resolvable": False,
             "count": 3, "nodes": ["node-00001", "node-00002", "node-00003"]},
        ])  # fmt: skip
    else:
        base["best"] = {"node": "node-00004", "score": 9, "rules": {"node-cost": 10.0, "node-metadata": 7.0}}
    base.update(fields)
    return base


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def client(server: FakeApiServer) -> KubeClient:
    return KubeClient(ClusterConfig(server=server.url, token_source=StaticToken("test-token")), timeout=5)


def test_the_summary_line_of_filter_and_prioritize() -> None:
    assert summary_line(record("filter"), record("prioritize")) == (
        "extender: 5/8 nodes passed; 3 rejected by node-condition (KernelDeadlock=True); "
        "best node-00004 score 9 (node-cost 10, node-metadata 7)"
    )
    assert summary_line(record("filter")) == "extender: 5/8 nodes passed; 3 rejected by node-condition (KernelDeadlock=True)"
    assert summary_line(None, record("prioritize")) == "extender: best node-00004 score 9 (node-cost 10, node-metadata 7)"


def test_the_summary_line_is_at_most_one_kib() -> None:
    long_reason = [{"rule": "r" * 300, "reason": "é" * 900, "count": 1} for _ in range(5)]
    line = summary_line(record("filter", rejected=long_reason))
    assert len(line.encode()) <= 1024 and line.endswith("...")
    assert "2 rejected for 2 more reason(s)" not in line  # cut before: the limit holds whatever the content


def test_the_event_regards_the_pod_and_carries_the_summary() -> None:
    body = event_body(record("filter"), record("prioritize"), "extender-abc", WHEN)
    assert body == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": "gpu-1.", "namespace": "default"},
        "eventTime": "2026-12-07T16:55:01.123456Z",
        "reportingController": "extender",
        "reportingInstance": "extender-abc",
        "action": "Scheduling",
        "reason": "ExtenderDecision",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "gpu-1", "uid": "749a"},
        "note": summary_line(record("filter"), record("prioritize")),
        "type": "Normal",
    }


def test_the_combiner_pairs_a_pods_filter_with_its_prioritize() -> None:
    combiner = Combiner(expects_prioritize=True, window=2.0, max_pods=2)
    f, p = record("filter"), record("prioritize")
    assert combiner.add(f, 0.0) == []
    assert combiner.due(1.9) == []
    assert combiner.add(p, 1.0) == [(f, p)]
    # No prioritize in time: the filter goes alone.
    assert combiner.add(f, 5.0) == []
    assert combiner.next_deadline() == 7.0
    assert combiner.due(7.0) == [(f, None)]
    # A filter that passed nothing gets no prioritize call: it goes at once.
    none_passed = record("filter", passed=0)
    assert combiner.add(none_passed, 8.0) == [(none_passed, None)]
    # Bounded: the oldest waiting filter goes when a third pod arrives.
    a, b, c = (record("filter", name=n, uid=n) for n in "abc")
    assert combiner.add(a, 9.0) == [] and combiner.add(b, 9.0) == []
    assert combiner.add(c, 9.0) == [(a, None)]


def test_a_filter_only_policy_posts_filter_alone() -> None:
    combiner = Combiner(expects_prioritize=False, window=2.0, max_pods=10)
    f = record("filter")
    assert combiner.add(f, 0.0) == [(f, None)]


def test_the_token_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert [bucket.take(), bucket.take()] == [True, False]


def test_events_arrive_combined_and_limited_per_pod(apiserver: FakeApiServer) -> None:
    clock = FakeClock()
    recorder = EventRecorder(
        client(apiserver), instance="extender-0", expects_prioritize=True, clock=clock, wall_clock=lambda: WHEN,
        options=EventOptions(per_pod_seconds=60, combine_seconds=30),
    ).start()
    counted = {o: REGISTRY.get_sample_value("extender_events_total", {"outcome": o}) or 0.0 for o in ("posted", "limited")}
    try:
        recorder(record("filter"))
        recorder(record("prioritize"))
        eventually(lambda: len(apiserver.created_events) == 1)
        (event,) = apiserver.created_events
        assert event["note"] == (
            "extender: 5/8 nodes passed; 3 rejected by node-condition (KernelDeadlock=True); "
            "best node-00004 score 9 (node-cost 10, node-metadata 7)"
        )
        assert event["regarding"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "gpu-1", "uid": "749a"}
        assert event["metadata"]["name"].startswith("gpu-1.") and event["metadata"]["namespace"] == "default"
        assert (event["type"], event["reason"], event["reportingController"]) == ("Normal", "ExtenderDecision", "extender")
        (post,) = [r for r in apiserver.requests if r.method == "POST"]
        assert post.path == "/apis/events.k8s.io/v1/namespaces/default/events" and post.status == 201

        # The same pod within 60 s: limited. Another pod: posted. After 60 s: posted again.
        recorder(record("prioritize"))
        recorder(record("prioritize", name="web-1", uid="b2"))
        eventually(lambda: len(apiserver.created_events) == 2)
        eventually(lambda: recorder.limited == 1)
        clock.advance(61)
        recorder(record("prioritize"))
        eventually(lambda: len(apiserver.created_events) == 3)
        assert [e["regarding"]["name"] for e in apiserver.created_events] == ["gpu-1", "web-1", "gpu-1"]
        eventually(lambda: recorder.posted == 3)  # counted once the API server has answered
        assert (recorder.failed, recorder.dropped) == (0, 0)
        for outcome, more in (("posted", 3), ("limited", 1)):  # and in /metrics
            assert REGISTRY.get_sample_value("extender_events_total", {"outcome": outcome}) == counted[outcome] + more
    finally:
        recorder.stop()


def test_the_overall_rate_is_a_token_bucket(apiserver: FakeApiServer) -> None:
    clock = FakeClock()
    recorder = EventRecorder(
        client(apiserver), instance="extender-0", expects_prioritize=False, clock=clock,
        options=EventOptions(rate=1.0, burst=3),
    ).start()
    try:
        for n in range(5):
            recorder(record("filter", name=f"p{n}", uid=f"u{n}"))
        eventually(lambda: recorder.posted + recorder.limited == 5)
        assert (recorder.posted, recorder.limited) == (3, 2)
        clock.advance(1.0)
        recorder(record("filter", name="p9", uid="u9"))
        eventually(lambda: recorder.posted == 4)
        assert len(apiserver.created_events) == 4 and recorder.limited == 2
    finally:
        recorder.stop()


def test_a_full_queue_drops_and_counts_without_blocking(apiserver: FakeApiServer) -> None:
    recorder = EventRecorder(
        client(apiserver), instance="extender-0", expects_prioritize=False, options=EventOptions(queue_size=2)
    )  # not started: nothing takes from the queue
    for n in range(5):
        recorder(record("filter", name=f"p{n}", uid=f"u{n}"))
    assert recorder.dropped == 3
    recorder(record("filter", outcome="out-of-scope"))  # never queued: nothing was decided
    recorder({"verb": "bind", "pod": {}})
    assert recorder.dropped == 3


def test_an_api_refusal_is_counted_not_raised(apiserver: FakeApiServer) -> None:
    apiserver.fail_next("POST", "/apis/events.k8s.io/", 403)
    recorder = EventRecorder(client(apiserver), instance="extender-0", expects_prioritize=False).start()
    try:
        recorder(record("filter"))
        eventually(lambda: recorder.failed == 1)
        assert apiserver.created_events == []
    finally:
        recorder.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"note": "x" * 1025}, "note: Too long"),
        ({"type": "Info"}, "type: Unsupported value"),
        ({"reportingController": ""}, "reportingController: Required value"),
    ],
)
def test_the_fake_validates_events_as_the_api_server(apiserver: FakeApiServer, change: dict[str, Any], message: str) -> None:
    import json

    import requests

    body = {**event_body(record("filter"), None, "extender-0", WHEN), **change}
    response = requests.post(
        f"{apiserver.url}/apis/events.k8s.io/v1/namespaces/default/events", data=json.dumps(body),
        headers={"Authorization": "Bearer test-token"}, timeout=5,
    )
    assert response.status_code == 422 and message in response.json()["message"]
    assert apiserver.created_events == []


def test_extender_serve_with_events_posts_one_event_per_pod(apiserver: FakeApiServer, tmp_path: Path) -> None:
    """``extender serve --events`` as run outside a cluster: recorded kube-scheduler requests
    (full-node mode) become one combined Event on the pod."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    flags = ("--workers", "1", "--policy", str(ROOT / "deploy" / "extender" / "policy.yaml"), "--events",
             "--kubeconfig", str(kubeconfig))  # fmt: skip
    with running_server(tmp_path, *flags) as server:
        for path in sorted((FIXTURES / "kube-scheduler-v1.30" / "full-nodes").glob("*-web-1.request.json")):
            assert server.post(path.name.split("-")[1], path.read_bytes()).status_code == 200
        eventually(lambda: len(apiserver.created_events) == 1)
        (event,) = apiserver.created_events
        assert event["note"] == (
            "extender: 4/8 nodes passed; 4 rejected by node-pools (reserved for node pool 'gpu'); best node-00001 score 10 (newest-nodes 10)"
        )
        assert event["regarding"]["name"] == "web-1" and event["regarding"]["kind"] == "Pod"
        assert event["regarding"]["uid"] and event["metadata"]["namespace"] == event["regarding"]["namespace"]


def test_a_reloaded_policy_changes_whether_events_wait_for_prioritize(apiserver: FakeApiServer, tmp_path: Path) -> None:
    """After a reload to a filter-only policy, a pod's filter goes out alone instead of waiting
    for a prioritize call kube-scheduler no longer makes."""
    from extender.settings import Settings
    from extender.web.app import create_app

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    policy_file = tmp_path / "policy.yaml"
    both = (ROOT / "deploy" / "extender" / "policy.yaml").read_text()
    policy_file.write_text(both)
    app = create_app(Settings(policy=str(policy_file), events=True, kubeconfig=str(kubeconfig), policy_poll_seconds=0))
    recorder = app.extensions["extender.events"]
    try:
        assert recorder.combiner.expects_prioritize is True
        policy_file.write_text(both.split("priorities:")[0])  # the predicates alone
        attempt = app.extensions["extender.reloader"].check("signal")
        assert attempt is not None and attempt.ok, attempt
        assert recorder.combiner.expects_prioritize is False
        f = record("filter")
        assert recorder.combiner.add(f, 0.0) == [(f, None)]
    finally:
        recorder.stop()
        app.extensions["extender.cluster"].stop()
