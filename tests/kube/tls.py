"""Throwaway PKI for the fake apiserver, made with the real ``openssl`` CLI.

A CA, a server certificate for ``127.0.0.1`` (IP SAN) and ``localhost``, and a client
certificate (``CN=extender``, ``O=system:extenders``: the apiserver's x509 authenticator
reads them as user and group). EC P-256 keys, PEM files, valid for two days.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """Paths of PEM files. ``ca_key`` is only needed to sign more certificates."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    ca_key: Path | None = None


_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = {cn}
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
"""

_LEAF_EXTENSIONS = """\
[v3]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = {usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
{san}
"""

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")


def _leaf(directory: Path, name: str, subject: str, usage: str, san: str) -> tuple[Path, Path]:
    """A key and a certificate signed by the CA in ``directory``."""
    (directory / f"{name}.cnf").write_text(_REQ_CONFIG.format(cn=name))
    (directory / f"{name}.ext").write_text(_LEAF_EXTENSIONS.format(usage=usage, san=san))
    key, csr, cert = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt"))
    _openssl("req", "-new", *_EC_KEY, "-config", f"{name}.cnf", "-subj", subject, "-keyout", key, "-out", csr, cwd=directory)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", f"0x{secrets.token_hex(8)}",
        "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-extensions", "v3", "-out", cert,
        cwd=directory,
    )  # fmt: skip
    return cert, key


def tls_files(directory: Path, *, client_cn: str = "extender", client_org: str = "system:extenders") -> TlsFiles:
    """Generate a CA, a server and a client certificate in ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.cnf").write_text(_REQ_CONFIG.format(cn="fake-kube-apiserver-ca"))
    _openssl(
        "req", "-x509", "-new", *_EC_KEY, "-config", "ca.cnf", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-sha256",
        cwd=directory,
    )  # fmt: skip
    server_cert, server_key = _leaf(
        directory, "server", "/CN=kube-apiserver", "serverAuth", "subjectAltName = IP:127.0.0.1,DNS:localhost"
    )
    client_cert, client_key = _leaf(directory, "client", f"/O={client_org}/CN={client_cn}", "clientAuth", "")
    return TlsFiles(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
    )
