"""Test PKI (made by :mod:`tests.pki` with the real ``openssl``), and a small HTTPS server that reports what it saw.

The end-to-end tests hand a :class:`ClusterConfig` straight to ``requests``; a real TLS server
(client certificates required where it matters) is the only honest way to show the paths,
``verify=`` values and headers it produces are the ones ``requests`` and ``ssl`` accept.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.pki import CertificateAuthority, openssl

CLIENT_CN = "extender-test-client"


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1, a client certificate and an encrypted copy of its key."""

    ca_crt: Path
    server_crt: Path
    server_key: Path
    client_crt: Path
    client_key: Path
    client_key_encrypted: Path


def make_pki(directory: Path) -> Pki:
    """Generate the test PKI in ``directory`` (about 50 ms with EC keys)."""
    ca = CertificateAuthority(directory, "ca")
    server = ca.server("server")
    client = ca.client("client", f"/O=system:masters/CN={CLIENT_CN}")
    openssl("pkey", "-in", "client.key", "-aes256", "-passout", "pass:secret", "-out", "client-enc.key", cwd=directory)
    return Pki(
        ca_crt=ca.cert,
        server_crt=server.cert,
        server_key=server.key,
        client_crt=client.cert,
        client_key=client.key,
        client_key_encrypted=directory / "client-enc.key",
    )


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        connection: ssl.SSLSocket = self.connection
        peer: Any = connection.getpeercert() or {}
        subject = {key: value for rdn in peer.get("subject", ()) for key, value in rdn}
        body = json.dumps(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "client_cn": subject.get("commonName")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


class HttpsServer(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 that answers every GET with what it saw as JSON."""

    daemon_threads = True

    def __init__(self, pki: Pki, *, require_client_cert: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_crt, pki.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(pki.ca_crt)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def start(self) -> HttpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes and dropped connections are what some tests are about
