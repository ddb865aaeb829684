"""The seen-nodes store preempt checks candidates against without a node cache: newest
resourceVersion wins, least recently seen is evicted first."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from extender.codec import kube_scheduler as wire
from extender.kube.seen import SeenNodes, is_newer
from extender.view import NodeView
from tests.conftest import fixture


def node(name: str, rv: str, **labels: str) -> NodeView:
    return NodeView(name, resource_version=rv, labels=labels)


@pytest.mark.parametrize(
    ("candidate", "current", "newer"),
    [
        ("12", "10", True),
        ("10", "12", False),
        ("9", "10", False),  # numerically, not as strings ("9" > "10")
        ("100", "99", True),
        ("10", "10", False),  # the same object: keep the one held
        ("abc", "10", True),  # not both integers: the one seen last wins
        ("10", "abc", True),
        ("", "", False),
        ("²", "1", True),  # a Unicode digit is not an integer resourceVersion
    ],
)
def test_resource_versions_compare_numerically_only_when_both_are_integers(candidate: str, current: str, newer: bool) -> None:
    assert is_newer(candidate, current) is newer


def test_a_newer_resource_version_replaces_and_an_older_one_does_not() -> None:
    seen = SeenNodes(10)
    rejected, accepted, stale = node("n", "10", state="maintenance"), node("n", "12"), node("n", "11", state="old")
    seen.record([rejected])
    assert seen.get("n") is rejected
    seen.record([accepted])
    assert seen.get("n") is accepted
    seen.record([stale])  # a scheduler whose cache lags sends an older version later
    assert seen.get("n") is accepted
    seen.record([node("n", "12")])
    assert seen.get("n") is accepted, "the same version: the view already held stays"


def test_the_bound_evicts_the_least_recently_seen() -> None:
    seen = SeenNodes(3)
    seen.record([node("a", "1"), node("b", "1"), node("c", "1")])
    seen.record([node("a", "1")])  # a seen again (same version): now the most recent
    seen.record([node("b", "0")])  # b seen again at an OLDER version: still seen, not replaced
    seen.record([node("d", "1")])
    assert seen.names() == ["a", "b", "d"] and seen.get("c") is None
    assert seen.get("b") is not None and seen.get("b").resource_version == "1"  # type: ignore[union-attr]
    seen.get("a")  # a lookup is not a sighting
    seen.record([node("e", "1")])
    assert seen.names() == ["b", "d", "e"] and len(seen) == 3


def test_capacity_zero_remembers_nothing() -> None:
    seen = SeenNodes(0)
    seen.record([node("a", "1")])
    assert len(seen) == 0 and seen.get("a") is None
    with pytest.raises(ValueError):
        SeenNodes(-1)


def test_recorded_request_nodes_are_kept_with_their_resource_versions() -> None:
    body = fixture("kube-scheduler-v1.30", "full-nodes", "00001-filter-web-1")
    views = wire.decode_node_views(body, wire.decode_extender_args(body))
    seen = SeenNodes()
    seen.record(views)
    assert sorted(seen.names()) == [f"node-0000{i}" for i in range(8)]
    assert seen.get("node-00000").resource_version == "207"  # type: ignore[union-attr]
    assert seen.get_many(["node-00007", "node-00099"])[1] is None


class Fetcher:
    """The API lookup, answering from a dict and recording what it was asked for."""

    def __init__(self, nodes: dict[str, NodeView]) -> None:
        self.nodes = nodes
        self.asked: list[list[str]] = []

    def fetch(self, names: Sequence[str]) -> dict[str, NodeView]:
        self.asked.append(list(names))
        return {n: self.nodes[n] for n in names if n in self.nodes}


def test_with_the_lookup_a_view_seen_long_ago_is_fetched_again() -> None:
    from extender.kube.candidates import REFRESH_AFTER, CandidateNodes

    now = [1000.0]
    seen = SeenNodes(10, clock=lambda: now[0])
    seen.record([node("full", "10"), node("busy", "10")])
    labelled = node("full", "15", maintenance="true")  # labelled after it filled up and left the requests
    fetcher = Fetcher({"full": labelled})
    candidates = CandidateNodes(seen=seen, fetcher=fetcher)
    assert candidates.resolve(["full", "busy"]) == ([seen.get("full"), seen.get("busy")], 0)
    assert fetcher.asked == [], "fresh views are trusted"
    now[0] += REFRESH_AFTER / 2
    seen.record([node("busy", "11")])  # still in filter requests: stays fresh
    now[0] += REFRESH_AFTER
    views, fetched = candidates.resolve(["full", "busy"])
    assert fetcher.asked == [["full"]] and fetched == 1
    assert views[0] is labelled and seen.get("full") is labelled and views[1] is seen.get("busy")


def test_a_stale_view_is_still_used_when_it_cannot_be_fetched_again() -> None:
    from extender.kube.candidates import REFRESH_AFTER, CandidateNodes

    now = [0.0]
    seen = SeenNodes(10, clock=lambda: now[0])
    old = node("n", "10")
    seen.record([old])
    now[0] += 2 * REFRESH_AFTER
    views, fetched = CandidateNodes(seen=seen, fetcher=Fetcher({})).resolve(["n"])
    assert (views, fetched) == ([old], 0)
