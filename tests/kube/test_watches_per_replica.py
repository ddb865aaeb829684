"""One node watch and one pod watch per replica: with a cache on, ``extender serve`` runs
one worker unless told otherwise (a 150k-pod list and a set of watches per worker would
multiply the API server's load and the replica's memory; README "Caches at scale" has the figures)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import eventually
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.live import write_kubeconfig
from tests.live_server import running_server


def _watches(apiserver: FakeApiServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in apiserver.requests:
        if request.is_watch:
            counts[request.path] = counts.get(request.path, 0) + 1
    return counts


def test_a_replica_with_caches_holds_one_node_watch_and_one_pod_watch(tmp_path: Path, apiserver: FakeApiServer) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    with running_server(tmp_path, "--node-cache", "--pod-cache", "--kubeconfig", str(kubeconfig)) as server:
        eventually(lambda: apiserver.open_watches >= 2, timeout=30)
        assert len(server.worker_pids()) == 1
        assert _watches(apiserver) == {"/api/v1/nodes": 1, "/api/v1/pods": 1}
        assert apiserver.open_watches == 2


def test_an_explicit_worker_count_wins_and_each_worker_watches(tmp_path: Path, apiserver: FakeApiServer) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)
    args = ("--workers", "2", "--node-cache", "--pod-cache", "--kubeconfig", str(kubeconfig))
    with running_server(tmp_path, *args) as server:
        eventually(lambda: apiserver.open_watches >= 4, timeout=30)
        assert len(server.worker_pids()) == 2
        assert _watches(apiserver) == {"/api/v1/nodes": 2, "/api/v1/pods": 2}
