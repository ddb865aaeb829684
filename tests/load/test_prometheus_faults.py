"""PrometheusSource when Prometheus is down, answers garbage or errors, and with auth and TLS for real.

Basic auth and TLS are checked by a real Prometheus (``--web.config.file``); a bearer token by
a loopback server, since Prometheus itself has no bearer auth.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extender.load.prometheus import PrometheusSource
from extender.load.source import SourceError
from extender.measured import Sample
from extender.policy.sources import load_sources
from extender.view import NodeView
from tests.conftest import eventually
from tests.load.prometheus_server import FakePrometheus, Prometheus, fake_prometheus, ok, prometheus
from tests.pki import CertificateAuthority, Leaf

#: the node-labelled series a Prometheus without targets answers
SERIES = 'label_replace(vector(7), "node", "node-a", "", "")'
PASSWORD = "s3cret-pw"
#: bcrypt of PASSWORD (cost 5), made once with glibc's crypt(3): Python's crypt module is
#: deprecated and no bcrypt package is needed for one constant; Prometheus checks it for real
PASSWORD_HASH = "$2b$05$abcdefghijklmnopqrstuuzSvhclVSvY9ufOheOOhcPviTPFJlqIC"
#: a fault must end the fetch within its timeout and this margin (a hang detector, not a speed)
MARGIN = 1.0


def source(url: str, timeout: str = "1s", **options: Any) -> PrometheusSource:
    spec = load_sources({"prom": {"type": "prometheus", "url": url, "timeout": timeout, **options}})["prom"]
    return PrometheusSource(spec, lambda: [NodeView("node-a")])


def fails_in_time(prom_source: PrometheusSource, match: str, keys: tuple[str, ...] = (SERIES,)) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=match):
        prom_source.fetch(keys)
    assert time.monotonic() - started < prom_source.spec.timeout + MARGIN


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    with fake_prometheus() as server:
        yield server


def test_a_stopped_prometheus_is_refused_and_a_restarted_one_answers_again(tmp_path: Path) -> None:
    with prometheus(tmp_path / "prometheus") as prom:
        prom_source = source(prom.url)
        assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 7
        prom.stop()
        fails_in_time(prom_source, r"^prometheus http://127\.0\.0\.1:\d+: connection refused$")
        prom.start()
        assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 7


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ((200, "text/html", b"<html><body>Sign in</body></html>"), r"not a Prometheus API answer \(text/html, HTTP 200\)"),
        ((200, "application/json", b'{"status":"success","data":{"resultType":"vec'), r"not a Prometheus API answer"),
        ((200, "application/json", b'{"status":"success","data":{"resultType":"vector","result":[{"metric":1}]}}'),
         r"not a Prometheus API answer \(HTTP 200\): Expected `object`"),
        ((502, "text/html", b"<html>Bad Gateway</html>"), r"HTTP 502: <html>Bad Gateway</html>$"),
        ((302, "text/html", b"<a href='/login'>"), r"HTTP 302: redirected to nowhere \(is url the API's base\?\)$"),
        ((503, "application/json", json.dumps({"status": "error", "errorType": "unavailable", "error": "shutting down"}).encode()),
         r"HTTP 503 unavailable: shutting down"),
    ],
)  # fmt: skip
def test_garbage_and_error_answers_fail_the_fetch_and_it_recovers(
    fake: FakePrometheus, answer: tuple[int, str, bytes], problem: str
) -> None:
    prom_source = source(fake.url)
    fake.answer = answer
    fails_in_time(prom_source, rf"^prometheus http://127\.0\.0\.1:\d+: {problem}", (SERIES, "other"))
    assert set(prom_source.partial_errors) == {SERIES, "other"}
    fake.answer = ok([{"metric": {"node": "node-a"}, "value": [1700000000.5, "3.5"]}])
    assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 3.5


def test_a_trickling_answer_is_cut_off_at_the_fetch_timeout(fake: FakePrometheus) -> None:
    fake.answer = ok([{"metric": {"node": "node-a"}, "value": [1700000000.5, "3.5"]}])
    fake.trickle = 0.05  # a byte every 50 ms: each read is quick, the whole answer takes ~4 s
    fails_in_time(source(fake.url), r"timed out after 1s$")


def test_a_bearer_token_is_read_from_its_file_and_reread_when_it_changes(fake: FakePrometheus, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first-token\n")
    fake.require_token = "first-token"
    fake.answer = ok([{"metric": {"node": "node-a"}, "value": [1700000000.5, "1"]}])
    prom_source = source(fake.url, bearerTokenFile=str(token), headers={"X-Scope-OrgID": "team-a"})
    assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 1
    assert fake.seen[-1]["X-Scope-OrgID"] == "team-a"
    fake.require_token = "rotated-token"
    token.write_text("rotated-token\n")
    assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 1
    token.unlink()
    fails_in_time(prom_source, rf"^prometheus http://127\.0\.0\.1:\d+: cannot read bearerTokenFile {token}: No such file")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Leaf, Leaf]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    # named for prometheus.test only: connecting to 127.0.0.1 needs serverName
    server = ca.issue("prometheus", "/CN=prometheus", usage="serverAuth", san="DNS:prometheus.test")
    return ca, server, ca.client("extender")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, pki: tuple[CertificateAuthority, Leaf, Leaf]) -> Iterator[Prometheus]:
    ca, server, client = pki
    web_config = {
        "tls_server_config": {
            "cert_file": str(server.cert),
            "key_file": str(server.key),
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": str(ca.cert),
        },
        "basic_auth_users": {"extender": PASSWORD_HASH},
    }
    cert = (str(client.cert), str(client.key))
    with prometheus(
        tmp_path_factory.mktemp("secured"), web_config=web_config, verify=False, auth=("extender", PASSWORD), cert=cert
    ) as prom:
        yield prom


def _secured_source(secured: Prometheus, pki: tuple[CertificateAuthority, Leaf, Leaf], tmp: Path, **tls: Any) -> PrometheusSource:
    ca, _, client = pki
    password = tmp / "password"
    if not password.exists():
        password.write_text(PASSWORD + "\n")
    options = {"caFile": str(ca.cert), "certFile": str(client.cert), "keyFile": str(client.key), "serverName": "prometheus.test"}
    options.update(tls)
    options = {k: v for k, v in options.items() if v is not None}
    return source(secured.url, basicAuth={"username": "extender", "passwordFile": str(password)}, tls=options)


def test_basic_auth_and_tls_with_a_client_certificate_against_prometheus(
    secured: Prometheus, pki: tuple[CertificateAuthority, Leaf, Leaf], tmp_path: Path
) -> None:
    prom_source = _secured_source(secured, pki, tmp_path)
    assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 7
    (tmp_path / "password").write_text("wrong\n")
    fails_in_time(prom_source, r"^prometheus https://127\.0\.0\.1:\d+: HTTP 401: Unauthorized")
    (tmp_path / "password").write_text(PASSWORD)
    eventually(lambda: bool(prom_source.fetch([SERIES])), timeout=10)


@pytest.mark.parametrize(
    ("tls", "problem"),
    [
        ({"serverName": None}, r"TLS: .*(Hostname mismatch|doesn't match|not valid for)"),
        ({"caFile": None}, r"TLS: .*certificate verify failed"),  # the system's CAs do not know the test CA
        ({"certFile": None, "keyFile": None}, r"TLS: "),  # Prometheus requires a client certificate
    ],
)
def test_tls_problems_are_named(
    secured: Prometheus, pki: tuple[CertificateAuthority, Leaf, Leaf], tmp_path: Path, tls: dict[str, Any], problem: str
) -> None:
    fails_in_time(_secured_source(secured, pki, tmp_path, **tls), rf"^prometheus https://127\.0\.0\.1:\d+: {problem}")


def test_insecure_skip_verify_trusts_any_server_certificate(
    secured: Prometheus, pki: tuple[CertificateAuthority, Leaf, Leaf], tmp_path: Path
) -> None:
    prom_source = _secured_source(secured, pki, tmp_path, caFile=None, serverName=None, insecureSkipVerify=True)
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning: the operator asked for it
        assert prom_source.fetch([SERIES])[SERIES]["node-a"].value == 7


def test_a_missing_password_file_is_a_clear_fetch_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    prom_source = source("http://127.0.0.1:9", basicAuth={"username": "u", "passwordFile": str(missing)})
    with pytest.raises(SourceError, match=rf"cannot read basicAuth passwordFile {missing}: No such file or directory$"):
        prom_source.fetch([SERIES])


def test_prometheus_warnings_are_kept_with_the_key(fake: FakePrometheus) -> None:
    answer = {
        "status": "success",
        "warnings": ["remote read: store unavailable"],
        "data": {"resultType": "vector", "result": [{"metric": {"node": "node-a"}, "value": [1700000000.5, "2"]}]},
    }
    fake.answer = (200, "application/json", json.dumps(answer).encode())
    prom_source = source(fake.url)
    assert prom_source.fetch([SERIES])[SERIES]["node-a"] == Sample(2.0, 1700000000.5)
    assert prom_source.warnings == {SERIES: ["prometheus: remote read: store unavailable"]}


@pytest.mark.parametrize("option", ["caFile", "certFile"])
def test_a_missing_tls_file_is_a_clear_fetch_error(tmp_path: Path, option: str) -> None:
    missing, present = tmp_path / "nope.pem", tmp_path / "present.pem"
    present.write_text("x")
    tls = {"caFile": str(present), "certFile": str(present), "keyFile": str(present), option: str(missing)}
    with pytest.raises(SourceError, match=rf"cannot read tls {option} {missing}: No such file or directory$"):
        source("https://127.0.0.1:9", tls=tls).fetch([SERIES])


def test_a_connection_reset_mid_request_is_named() -> None:
    """A server that takes the request and resets the connection (as a Prometheus process
    exiting under a waiting fetch does): a one-line reason, not urllib3's exception repr."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def reset_each() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            conn.close()

    threading.Thread(target=reset_each, daemon=True).start()
    try:
        fails_in_time(source(f"http://127.0.0.1:{listener.getsockname()[1]}"), "connection reset by the server")
    finally:
        listener.close()


def test_a_host_name_that_does_not_resolve_is_named() -> None:
    # .invalid never resolves (RFC 2606), so no DNS server is asked anything real
    fails_in_time(source("http://prometheus.invalid:9090"), "the host name does not resolve")
