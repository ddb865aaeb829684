"""Throwaway PKI for the fake apiserver (made by :mod:`tests.pki` with the real ``openssl``).

A CA, a server certificate for ``127.0.0.1`` (IP SAN) and ``localhost``, and a client
certificate (``CN=extender``, ``O=system:extenders``: the apiserver's x509 authenticator
reads them as user and group). EC P-256 keys, PEM files, valid for two days.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.pki import CertificateAuthority


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """Paths of PEM files. ``ca_key`` is only needed to sign more certificates."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    ca_key: Path | None = None


def tls_files(directory: Path, *, client_cn: str = "extender", client_org: str = "system:extenders") -> TlsFiles:
    """Generate a CA, a server and a client certificate in ``directory`` (created if needed)."""
    ca = CertificateAuthority(directory, "fake-kube-apiserver-ca")
    server = ca.server("server")
    client = ca.client("client", f"/O={client_org}/CN={client_cn}")
    return TlsFiles(
        ca_cert=ca.cert,
        ca_key=ca.key,
        server_cert=server.cert,
        server_key=server.key,
        client_cert=client.cert,
        client_key=client.key,
    )
