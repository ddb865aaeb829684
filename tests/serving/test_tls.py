"""TLS and mTLS in ``extender serve``: real certificates (openssl), a real gunicorn, rotation."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from tests.conftest import eventually, fixture, request_line, scheduler_fixtures
from tests.pki import CertificateAuthority, Leaf
from tests.live_server import Server, read_response, running_server
from tests.test_server import free_port

FILTER = fixture("kube-scheduler-v1.30", "full-nodes", "00001-filter-web-1")
LONG_AGO = {"not_before": datetime(2020, 1, 1, tzinfo=timezone.utc), "not_after": datetime(2021, 1, 1, tzinfo=timezone.utc)}


@dataclass
class Pki:
    ca: CertificateAuthority
    server: Leaf
    client: Leaf
    expired_client: Leaf
    stranger: Leaf  # a client certificate from a CA the extender does not trust
    #: what the server is started with: symlinks through ..data, as a Secret volume mounts them
    mounted_cert: Path
    mounted_key: Path


def mount(directory: Path, cert: Path, key: Path) -> None:
    """Point ``directory/..data`` at a fresh copy of ``cert``/``key``, swapping the link
    atomically the way the kubelet updates a Secret volume."""
    version = directory / f"..{time.monotonic_ns()}"
    version.mkdir()
    (version / "tls.crt").write_bytes(cert.read_bytes())
    (version / "tls.key").write_bytes(key.read_bytes())
    link = directory / "..data_tmp"
    link.symlink_to(version.name)
    os.replace(link, directory / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(directory, "extender-ca")
    stranger_ca = CertificateAuthority(directory, "other-ca")
    secret = directory / "secret"
    secret.mkdir()
    server = ca.server("server")
    mount(secret, server.cert, server.key)
    return Pki(
        ca=ca,
        server=server,
        client=ca.client("kube-scheduler"),
        expired_client=ca.client("expired", **LONG_AGO),
        stranger=stranger_ca.client("stranger"),
        mounted_cert=secret / "tls.crt",
        mounted_key=secret / "tls.key",
    )


def client_context(pki: Pki, leaf: Leaf | None, *, tls12: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if leaf is not None:
        context.load_cert_chain(leaf.cert, leaf.key)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # the client learns of a refusal in the handshake itself
    return context


def ready_with(pki: Pki) -> object:
    cert = (str(pki.client.cert), str(pki.client.key))
    return lambda s: requests.get(f"{s.url}/readyz", verify=str(pki.ca.cert), cert=cert, timeout=2).status_code == 200


@pytest.fixture(scope="module")
def mtls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    args = ("--tls-cert", str(pki.mounted_cert), "--tls-key", str(pki.mounted_key), "--tls-client-ca", str(pki.ca.cert))
    with running_server(tmp_path_factory.mktemp("mtls"), *args, ready=ready_with(pki)) as server:
        yield server


def scheduler_session(pki: Pki) -> requests.Session:
    """A keep-alive session presenting the scheduler's client certificate. (verify= goes with
    each request: a Session's own is overridden by REQUESTS_CA_BUNDLE when that is set.)"""
    session = requests.Session()
    session.cert = (str(pki.client.cert), str(pki.client.key))
    return session


def presented_serial(server: Server, pki: Pki) -> str:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with client_context(pki, pki.client).wrap_socket(sock, server_hostname="localhost") as tls:
            serial: str = tls.getpeercert()["serialNumber"]  # type: ignore[index,assignment]
            return serial


def test_the_scheduler_s_certificate_is_accepted_and_keep_alive_works(mtls: Server, pki: Pki) -> None:
    session = scheduler_session(pki)
    for path in scheduler_fixtures():
        _, target = request_line(path)
        response = session.post(mtls.url + target, data=path.read_bytes(), timeout=10, verify=str(pki.ca.cert))
        assert response.status_code == 200, response.text
    pools = session.get_adapter(mtls.url).poolmanager.pools
    assert sum(pools[key].num_connections for key in pools.keys()) == 1, "one TLS connection carried every call"


@pytest.mark.parametrize("tls12", [True, False], ids=["TLS 1.2", "TLS 1.3"])
@pytest.mark.parametrize(
    ("who", "reason"),
    [("none", "refused: PEER_DID_NOT_RETURN_A_CERTIFICATE"),
     ("expired", "refused: CERTIFICATE_VERIFY_FAILED (certificate has expired)"),
     ("stranger", "refused: CERTIFICATE_VERIFY_FAILED (unable to get local issuer certificate)")],
)
def test_a_client_without_a_valid_certificate_is_refused_at_the_handshake(
    mtls: Server, pki: Pki, who: str, reason: str, tls12: bool
) -> None:
    leaf = {"none": None, "expired": pki.expired_client, "stranger": pki.stranger}[who]
    with socket.create_connection(("127.0.0.1", mtls.port), timeout=10) as sock:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with client_context(pki, leaf, tls12=tls12).wrap_socket(sock, server_hostname="localhost") as tls:
                # TLS 1.3 finishes the client's side of the handshake before the server has
                # checked its certificate: the refusal is the first thing it reads.
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert tls.recv(100) == b"", "the server answered a client it should have refused"
    eventually(lambda: reason in mtls.log_text())
    assert "Traceback" not in mtls.log_text()


def test_plain_http_on_the_tls_port_gets_no_answer(mtls: Server) -> None:
    with socket.create_connection(("127.0.0.1", mtls.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/"), answer
    eventually(lambda: "refused: HTTP_REQUEST" in mtls.log_text())


def test_rotated_certificates_are_served_to_new_connections_without_dropping_requests_in_flight(
    mtls: Server, pki: Pki
) -> None:
    assert presented_serial(mtls, pki) == pki.server.serial
    # A keep-alive connection, and a request half-sent, both opened on the old certificate.
    session = scheduler_session(pki)
    assert session.post(f"{mtls.url}/scheduler/filter", data=FILTER, timeout=10, verify=str(pki.ca.cert)).status_code == 200
    raw_tls = client_context(pki, pki.client).wrap_socket(
        socket.create_connection(("127.0.0.1", mtls.port), timeout=10), server_hostname="localhost"
    )
    head = b"POST /scheduler/filter HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(FILTER)
    raw_tls.sendall(head + FILTER[:1000])

    # A half-written rotation (the new certificate beside the old key) is not taken up...
    renewed = pki.ca.server("server-renewed")
    mount(pki.mounted_cert.parent, renewed.cert, pki.server.key)
    # (files are checked when a connection arrives, at most once a second per worker)
    eventually(lambda: presented_serial(mtls, pki) == pki.server.serial and "still serving the previous" in mtls.log_text())
    assert "key values mismatch" in mtls.log_text()
    # ...the completed one is, by new connections.
    mount(pki.mounted_cert.parent, renewed.cert, renewed.key)
    eventually(lambda: presented_serial(mtls, pki) == renewed.serial)

    raw_tls.sendall(FILTER[1000:])  # the request in flight finishes on its connection
    status, _, body = read_response(raw_tls)  # type: ignore[arg-type]
    assert status == 200 and b'"Nodes"' in body
    raw_tls.close()
    assert session.post(f"{mtls.url}/scheduler/filter", data=FILTER, timeout=10, verify=str(pki.ca.cert)).status_code == 200
    assert "TLS certificate reloaded" in mtls.log_text()


def test_the_probe_port_answers_kubelet_s_probes_in_plain_http_and_nothing_else(pki: Pki, tmp_path: Path) -> None:
    # kubelet's HTTPS probes present no client certificate: under mTLS they need their own port.
    probe = free_port()
    args = ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-client-ca", str(pki.ca.cert),
            "--probe-port", str(probe))
    with running_server(tmp_path, *args, ready=lambda s: requests.get(f"http://127.0.0.1:{probe}/readyz", timeout=2).ok):
        assert requests.get(f"http://127.0.0.1:{probe}/healthz", timeout=5).json() == {"status": "ok"}
        # Prometheus scrapes there too: it presents no client certificate either
        scrape = requests.get(f"http://127.0.0.1:{probe}/metrics", timeout=5)
        assert scrape.status_code == 200 and "extender_policy_info{" in scrape.text
        for method, path in (("POST", "/scheduler/filter"), ("GET", "/version"), ("GET", "/openapi.json")):
            response = requests.request(method, f"http://127.0.0.1:{probe}{path}", data=FILTER, timeout=5)
            assert response.status_code == 404
            assert response.json() == {"error": "the probe port serves only GET /healthz, GET /readyz and GET /metrics"}


def test_tls_without_client_certificates(pki: Pki, tmp_path: Path) -> None:
    args = ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key))
    ready = lambda s: requests.get(f"{s.url}/readyz", verify=str(pki.ca.cert), timeout=2).status_code == 200  # noqa: E731
    with running_server(tmp_path, *args, ready=ready) as server:
        response = requests.post(f"{server.url}/scheduler/filter", data=FILTER, verify=str(pki.ca.cert), timeout=10)
        assert response.status_code == 200
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            with client_context(pki, None).wrap_socket(sock, server_hostname="localhost") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.selected_alpn_protocol() is None  # HTTP/1.1 unless a client asks for h2


def test_serve_refuses_to_start_with_unusable_tls_files(pki: Pki, tmp_path: Path) -> None:
    import subprocess
    import sys

    for args, message in [
        (("--tls-cert", str(pki.server.cert)), "TLS needs both --tls-cert and --tls-key"),
        (("--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(pki.server.key)), "no such file"),
        (("--tls-client-ca", str(pki.ca.cert)), "--tls-client-ca (mTLS) needs --tls-cert and --tls-key"),
    ]:
        done = subprocess.run([sys.executable, "-m", "extender", "serve", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    # Files that exist but do not load: a key that is not the certificate's.
    mismatched = ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.client.key))
    done = subprocess.run([sys.executable, "-m", "extender", "serve", *mismatched], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "refusing to start: TLS: server certificate" in done.stderr and "key values mismatch" in done.stderr


def test_the_admin_port_serves_the_status_page_in_plain_http_under_mtls(pki: Pki, tmp_path: Path) -> None:
    # Reached through kubectl port-forward on loopback: no client certificate to present.
    admin = free_port()
    args = ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-client-ca", str(pki.ca.cert),
            "--admin-port", str(admin), "--runtime-dir", str(tmp_path / "run"))
    status = f"http://127.0.0.1:{admin}/status"
    with running_server(tmp_path, *args, ready=lambda s: requests.get(status, timeout=2).ok) as server:
        response = requests.post(
            f"{server.url}/scheduler/filter", data=FILTER, timeout=10, verify=str(pki.ca.cert),
            cert=(str(pki.client.cert), str(pki.client.key)),
        )
        assert response.status_code == 200
        page = requests.get(status, timeout=10)
        assert page.status_code == 200 and "default/web-1" in page.text and page.text.count('class="decision"') == 1
