"""Fixtures: throwaway TLS files and started fake kube-apiservers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_apiserver import FakeApiServer
from .tls import TlsFiles, tls_files


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (CN=extender)."""
    return tls_files(tmp_path_factory.mktemp("kube-tls"))


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    """A started plain-HTTP fake apiserver (token "test-token", revision 502)."""
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def tls_apiserver(tls: TlsFiles) -> Iterator[FakeApiServer]:
    """A started HTTPS fake apiserver that requires a client certificate signed by ``tls.ca_cert``."""
    with FakeApiServer(tls=tls, require_client_cert=True) as server:
        yield server
