"""Throwaway certificate authorities for the tests, made with the real ``openssl`` CLI.

EC P-256 keys, PEM files. Certificates are issued with ``openssl ca`` so their validity can be
put anywhere in time (an expired client certificate is one of the things mTLS must refuse).
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

_CA_REQ = """\
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

_CA_CONFIG = """\
[ca]
default_ca = this
[this]
database = {name}.index
new_certs_dir = {name}.issued
serial = {name}.serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
organizationName = optional
"""

_LEAF_EXTENSIONS = """\
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = {usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
{san}
"""


def openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")


def _asn1_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")


@dataclass(frozen=True)
class Leaf:
    """A certificate and its key, and the serial it was issued with (hex, as openssl prints it)."""

    cert: Path
    key: Path
    serial: str


class CertificateAuthority:
    """A CA in ``directory``; :meth:`issue` signs server and client certificates."""

    def __init__(self, directory: Path, name: str = "ca", *, days: int = 2) -> None:
        self.directory = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.issued").mkdir(exist_ok=True)
        (directory / f"{name}.index").write_text("")
        (directory / f"{name}-req.cnf").write_text(_CA_REQ.format(cn=f"test {name}"))
        (directory / f"{name}-ca.cnf").write_text(_CA_CONFIG.format(name=name))
        self.cert = directory / f"{name}.crt"
        self.key = directory / f"{name}.key"
        openssl(
            "req", "-x509", "-new", *EC_KEY, "-config", f"{name}-req.cnf", "-keyout", self.key, "-out", self.cert,
            "-days", str(days), "-sha256",
            cwd=directory,
        )  # fmt: skip

    def issue(
        self,
        name: str,
        subject: str,
        *,
        usage: str,
        san: str = "",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Leaf:
        """A key and a certificate for ``subject`` (``/O=group/CN=name``), valid from an hour
        ago for two days unless told otherwise."""
        now = datetime.now(timezone.utc)
        start, end = not_before or now - timedelta(hours=1), not_after or now + timedelta(days=2)
        key, csr, cert = (self.directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt"))
        (self.directory / f"{name}.ext").write_text(
            _LEAF_EXTENSIONS.format(usage=usage, san=f"subjectAltName = {san}" if san else "")
        )
        openssl("req", "-new", *EC_KEY, "-subj", subject, "-keyout", key, "-out", csr, cwd=self.directory)
        serial = "1" + secrets.token_hex(8).upper() + "0"  # an even number of digits, positive
        (self.directory / f"{self.name}.serial").write_text(serial + "\n")
        openssl(
            "ca", "-batch", "-config", f"{self.name}-ca.cnf", "-cert", self.cert, "-keyfile", self.key,
            "-in", csr, "-out", cert, "-notext",
            "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
            "-extfile", f"{name}.ext", "-extensions", "leaf",
            cwd=self.directory,
        )  # fmt: skip
        return Leaf(cert, key, serial)

    def server(self, name: str = "server", **validity: datetime) -> Leaf:
        """A server certificate for 127.0.0.1 and localhost."""
        return self.issue(name, f"/CN={name}", usage="serverAuth", san="IP:127.0.0.1,DNS:localhost", **validity)

    def client(self, name: str = "client", subject: str | None = None, **validity: datetime) -> Leaf:
        """A client certificate (``/CN=<name>`` unless ``subject`` says otherwise)."""
        return self.issue(name, subject or f"/CN={name}", usage="clientAuth", **validity)
