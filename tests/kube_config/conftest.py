"""Fixtures for the connection-config tests: a test PKI and HTTPS servers using it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kube_config.tls import HttpsServer, Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_server(pki: Pki) -> Iterator[Callable[..., HttpsServer]]:
    """Start servers with ``https_server(require_client_cert=...)``; all are stopped afterwards."""
    servers: list[HttpsServer] = []

    def start(*, require_client_cert: bool = False) -> HttpsServer:
        server = HttpsServer(pki, require_client_cert=require_client_cert).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests honours proxy variables; the test server is local."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def sa_dir(tmp_path: Path, pki: Pki) -> Path:
    """A service-account directory as kubelet mounts it."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("sa-token\n")
    (directory / "ca.crt").write_bytes(pki.ca_crt.read_bytes())
    (directory / "namespace").write_text("kube-system")
    return directory
