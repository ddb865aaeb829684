"""Where the Kubernetes API server is and how to authenticate: in-cluster or from a kubeconfig.

The extender talks to the API server with plain ``requests`` (no Kubernetes client library),
so this module turns the two usual sources of connection settings into exactly what
``requests`` takes: a server URL, a ``verify=`` value, a ``cert=`` pair of file paths and an
``Authorization`` header. It follows kubectl's rules where people rely on them ($KUBECONFIG
merging, paths relative to the kubeconfig, exec credential plugins), so a kubeconfig that works
with kubectl works here, and it refuses what it cannot honour (basic auth, auth-provider,
impersonation) rather than connecting as someone else. Tokens come from a :class:`TokenSource`
because they change under a running process: kubelet rotates projected service-account tokens
and exec plugins mint short-lived ones.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import dataclasses
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml

from extender.k8s.timefmt import parse_timestamp
from extender.k8s.yamlfmt import describe_yaml_error

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
#: an exec token is renewed this many seconds before its expirationTimestamp (clock skew, slow requests)
EXEC_EXPIRY_MARGIN = 60.0
#: a credential plugin that hangs must not hang the extender with it
EXEC_TIMEOUT = 60.0


class ConfigError(Exception):
    """Cannot build a connection config; the message says what to fix."""


class TokenSource(Protocol):
    """Where the bearer token comes from; asked before every request."""

    def token(self) -> str | None:
        """The current bearer token (None: send no ``Authorization`` header)."""
        ...

    def invalidate(self) -> None:
        """The server answered 401: get a fresh token on the next :meth:`token` call."""
        ...


class StaticToken:
    """A fixed token (kubeconfig ``token``): nothing to refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str | None:
        return self._token

    def invalidate(self) -> None:
        """Nothing to re-read; the next request is refused the same way."""

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class FileToken:
    """A token read from a file that is replaced underneath us (kubelet rotates projected tokens).

    The file is re-read when its mtime or inode changed, once ``reread_after`` seconds have
    passed (a rewrite within the mtime granularity would go unseen otherwise), and right after
    :meth:`invalidate`. A failed re-read keeps serving the last good token, as client-go does,
    unless the server already rejected that token.
    """

    def __init__(self, path: str, *, reread_after: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._reread_after = reread_after
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._stamp: tuple[int, int] | None = None
        self._read_at = 0.0
        self._rejected = False

    def token(self) -> str | None:
        with self._lock:
            stamp = self._file_stamp()
            if (
                self._token is None
                or self._rejected
                or stamp != self._stamp
                or self._clock() - self._read_at >= self._reread_after
            ):
                self._reload(stamp)
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._rejected = True

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        try:
            text = Path(self.path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"cannot read token file {self.path}: {_reason(exc)}"
        else:
            if text:
                self._token, self._stamp, self._read_at, self._rejected = text, stamp, self._clock(), False
                return
            problem = f"token file {self.path} is empty"
        if self._token is None or self._rejected:
            raise ConfigError(problem)

    def __repr__(self) -> str:
        return f"FileToken({self.path!r})"


class ExecToken:
    """A token from a kubeconfig ``exec`` credential plugin, cached until shortly before it expires.

    Only token credentials are supported: a client certificate from a plugin is TLS material
    that rotates under a live connection pool, which the client does not implement.
    """

    def __init__(
        self,
        command: str,
        args: list[str],
        env: dict[str, str],
        api_version: str,
        *,
        clock: Callable[[], float] = time.time,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        if api_version not in EXEC_API_VERSIONS:
            raise ConfigError(
                f"exec plugin {command!r}: apiVersion {api_version!r} is not supported "
                f"(use {' or '.join(EXEC_API_VERSIONS)})"
            )
        self.command = command
        self.args = list(args)
        self.env = dict(env)
        self.api_version = api_version
        self._clock = clock
        self._run = run
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at: float | None = None  # None with a token: it never expires

    def token(self) -> str | None:
        with self._lock:  # one plugin run at a time; concurrent callers wait for its token
            if self._token is None or (self._renew_at is not None and self._clock() >= self._renew_at):
                self._token, self._renew_at = self._fetch()
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> tuple[str, float | None]:
        token, expires = self._parse(self._run_plugin())
        if expires is None:
            return token, None
        # a token living less than twice the margin is still reused for half its remaining life
        return token, expires - min(EXEC_EXPIRY_MARGIN, max(expires - self._clock(), 0.0) / 2)

    def _run_plugin(self) -> str:
        where = self._where()
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            result = self._run(
                [self.command, *self.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=EXEC_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise ConfigError(f"{where}: command not found (is it installed and on PATH?)") from None
        except subprocess.TimeoutExpired:
            raise ConfigError(f"{where}: no answer after {EXEC_TIMEOUT:g} s") from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot run it: {_reason(exc)}") from None
        if result.returncode != 0:
            stderr = result.stderr.strip()[-2000:]  # the end of a long trace says what went wrong
            detail = f": {stderr}" if stderr else " (nothing on stderr)"
            raise ConfigError(f"{where}: exited with code {result.returncode}{detail}")
        return result.stdout

    def _parse(self, stdout: str) -> tuple[str, float | None]:
        where = self._where()
        try:
            document = json.loads(stdout)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: stdout is not JSON ({exc}); it must print an ExecCredential") from None
        if not isinstance(document, dict) or document.get("kind") != "ExecCredential":
            raise ConfigError(f"{where}: stdout is not an ExecCredential object")
        if document.get("apiVersion") != self.api_version:
            raise ConfigError(
                f"{where}: returned apiVersion {document.get('apiVersion')!r}, "
                f"the kubeconfig asks for {self.api_version!r}"
            )
        status = document.get("status")
        if not isinstance(status, dict):
            raise ConfigError(f"{where}: the ExecCredential has no status")
        token = status.get("token")
        if not isinstance(token, str) or not token:
            if status.get("clientCertificateData"):
                raise ConfigError(
                    f"{where}: returned a client certificate (status.clientCertificateData); "
                    "client certificates from exec plugins are not supported, only status.token"
                )
            raise ConfigError(f"{where}: the ExecCredential has no status.token")
        return token, self._expiry(status)

    def _expiry(self, status: Mapping[str, Any]) -> float | None:
        value = status.get("expirationTimestamp")
        if value is None or value == "":
            return None
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return parse_timestamp(value).timestamp()
        except ValueError:
            raise ConfigError(
                f"{self._where()}: status.expirationTimestamp {value!r} is not an RFC 3339 time"
            ) from None

    def _where(self) -> str:
        return f"exec plugin {self.command!r}"

    def __repr__(self) -> str:
        return f"ExecToken({self.command!r}, {self.args!r})"


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach the API server with ``requests``."""

    server: str
    ca_file: str | None = None
    insecure: bool = False
    client_cert: tuple[str, str] | None = None
    token_source: TokenSource | None = None
    tls_server_name: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        # callers append "/api/v1/..."; a double slash is refused by some proxies in front of API servers
        object.__setattr__(self, "server", self.server.rstrip("/"))

    def verify(self) -> str | bool:
        """``verify=`` for ``requests``: False (insecure), the CA bundle path, or True (system CAs)."""
        if self.insecure:
            return False
        return self.ca_file if self.ca_file is not None else True

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for the current token, or no headers."""
        token = self.token_source.token() if self.token_source is not None else None
        return {"Authorization": f"Bearer {token}"} if token else {}


def in_cluster_config(environ: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR) -> ClusterConfig:
    """Connect as the pod's service account, like client-go's ``InClusterConfig``."""
    env = os.environ if environ is None else environ
    missing = [name for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT") if not env.get(name)]
    if missing:
        raise ConfigError(f"in-cluster: {' and '.join(missing)} not set (not running in a pod?)")
    host, port = env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    token = FileToken(os.path.join(sa_dir, "token"))
    try:
        token.token()  # fail at startup, not at the first request
    except ConfigError as exc:
        raise ConfigError(f"in-cluster: {exc} (is automountServiceAccountToken off?)") from None
    ca_file = os.path.join(sa_dir, "ca.crt")
    _check_ca(ca_file, "in-cluster: CA bundle")
    return ClusterConfig(server=f"https://{host}:{port}", ca_file=ca_file, token_source=token, source="in-cluster")


def kubeconfig_config(
    path: str | None = None, context: str | None = None, environ: Mapping[str, str] | None = None
) -> ClusterConfig:
    """Connect as a kubeconfig context says (``path``, else $KUBECONFIG, else ~/.kube/config).

    The user's token comes from ``tokenFile``, else ``token``, else ``exec`` (a token beats an
    exec plugin, as in client-go); a client certificate may accompany any of them.
    """
    env = os.environ if environ is None else environ
    merged = _merge(_kubeconfig_files(path, env))
    name = context or merged.current_context
    if not name:
        raise ConfigError(
            f"{merged.label}: no context given and current-context is not set (contexts: {_names(merged.contexts)})"
        )
    ctx = merged.lookup("context", name, merged.contexts)
    where = f"kubeconfig {ctx.origin}: context {name!r}"
    cluster_name = _string(ctx.body, "cluster", where)
    if not cluster_name:
        raise ConfigError(f"{where} names no cluster")
    config = _cluster_config(merged.lookup("cluster", cluster_name, merged.clusters, f" (from context {name!r})"))
    user_name = _string(ctx.body, "user", where)
    if user_name:
        user = merged.lookup("user", user_name, merged.users, f" (from context {name!r})")
        client_cert, token_source = _user_auth(user)
        config = dataclasses.replace(config, client_cert=client_cert, token_source=token_source)
    return dataclasses.replace(config, source=f"{merged.label} (context {name})")


def load_config(
    kubeconfig: str | None = None, context: str | None = None, environ: Mapping[str, str] | None = None
) -> ClusterConfig:
    """An explicit kubeconfig or context, else in-cluster, else $KUBECONFIG / ~/.kube/config."""
    env = os.environ if environ is None else environ
    if kubeconfig or context:
        return kubeconfig_config(kubeconfig or None, context or None, env)  # in-cluster has no contexts to choose from
    tried: list[str] = []
    if env.get("KUBERNETES_SERVICE_HOST"):
        try:
            return in_cluster_config(env, sa_dir=SERVICE_ACCOUNT_DIR)
        except ConfigError as exc:
            tried.append(str(exc))
    else:
        tried.append("in-cluster: KUBERNETES_SERVICE_HOST is not set (not running in a pod)")
    try:
        return kubeconfig_config(None, None, env)
    except ConfigError as exc:
        tried.append(str(exc))
    raise ConfigError("no usable Kubernetes connection config; tried " + "; ".join(tried))


# --- kubeconfig files -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """A named cluster, user or context and the file that defined it (its relative paths' base)."""

    name: str
    body: Mapping[str, Any]
    origin: str


@dataclass
class _Kubeconfig:
    """The merged view of one or more kubeconfig files."""

    files: list[str]
    clusters: dict[str, _Entry] = dataclasses.field(default_factory=dict)
    users: dict[str, _Entry] = dataclasses.field(default_factory=dict)
    contexts: dict[str, _Entry] = dataclasses.field(default_factory=dict)
    current_context: str | None = None

    @property
    def label(self) -> str:
        return "kubeconfig " + os.pathsep.join(self.files)

    def lookup(self, kind: str, name: str, entries: dict[str, _Entry], why: str = "") -> _Entry:
        if name not in entries:
            raise ConfigError(f"{self.label}: {kind} {name!r}{why} not found ({kind}s: {_names(entries)})")
        return entries[name]


_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


def _kubeconfig_files(path: str | None, env: Mapping[str, str]) -> list[str]:
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"kubeconfig {path}: file not found")
        return [path]
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        existing = [p for p in dict.fromkeys(listed) if os.path.isfile(p)]  # kubectl skips missing ones
        if not existing:
            raise ConfigError(f"kubeconfig: none of the files in $KUBECONFIG exists ({', '.join(listed)})")
        return existing
    default = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".kube", "config")
    if not os.path.isfile(default):
        raise ConfigError(f"kubeconfig: $KUBECONFIG is not set and {default} does not exist")
    return [default]


def _merge(files: list[str]) -> _Kubeconfig:
    """kubectl's merge: the first file to define a name wins, and the first current-context set wins."""
    merged = _Kubeconfig(files)
    targets = {"clusters": merged.clusters, "users": merged.users, "contexts": merged.contexts}
    for path in files:
        document = _load_file(path)
        for section, key in _SECTIONS:
            for entry in _entries(document, section, key, path):
                targets[section].setdefault(entry.name, entry)
        current = document.get("current-context")
        if merged.current_context is None and isinstance(current, str) and current:
            merged.current_context = current
    return merged


def _load_file(path: str) -> Mapping[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"kubeconfig {path}: cannot read it: {_reason(exc)}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path}: not valid YAML: {describe_yaml_error(exc)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"kubeconfig {path}: must be a mapping, got {type(document).__name__}")
    return document


def _entries(document: Mapping[str, Any], section: str, key: str, path: str) -> Iterator[_Entry]:
    items = document.get(section) or []
    if not isinstance(items, list):
        raise ConfigError(f"kubeconfig {path}: {section} must be a list")
    for index, item in enumerate(items):
        where = f"kubeconfig {path}: {section}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(f"{where} has no name")
        body = item.get(key) or {}
        if not isinstance(body, dict):
            raise ConfigError(f"{where} ({item['name']!r}): {key} must be a mapping")
        yield _Entry(item["name"], body, path)


def _cluster_config(cluster: _Entry) -> ClusterConfig:
    where = f"kubeconfig {cluster.origin}: cluster {cluster.name!r}"
    server = _string(cluster.body, "server", where)
    if not server:
        raise ConfigError(f"{where} has no server")
    insecure = cluster.body.get("insecure-skip-tls-verify") or False
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where}: insecure-skip-tls-verify must be true or false")
    ca_file = _data_or_file(cluster, "certificate-authority", "ca", where)
    if ca_file is not None:
        if insecure:
            raise ConfigError(
                f"{where}: insecure-skip-tls-verify cannot be combined with a certificate authority "
                "(kubectl refuses it too)"
            )
        _check_ca(ca_file, f"{where}: certificate authority")
    # proxy-url is ignored: the extender runs in or beside the cluster and connects to the server directly
    return ClusterConfig(
        server=_server_url(server, where),
        ca_file=ca_file,
        insecure=insecure,
        tls_server_name=_string(cluster.body, "tls-server-name", where),
    )


def _server_url(server: str, where: str) -> str:
    url = server if "://" in server else f"https://{server}"  # kubectl's default scheme
    if "@" in urlsplit(url).netloc:
        # The server URL is logged and shown in errors; requests would also turn the userinfo
        # into basic auth. Neither the message nor the log may repeat it.
        raise ConfigError(
            f"{where}: the server URL carries credentials (user:password@host); remove them and use a token, "
            "a client certificate or an exec plugin"
        )
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("https", "http") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ConfigError(f"{where}: server {server!r} is not an http(s) URL")
    return url.rstrip("/")


def _user_auth(user: _Entry) -> tuple[tuple[str, str] | None, TokenSource | None]:
    where = f"kubeconfig {user.origin}: user {user.name!r}"
    _refuse_unsupported(user.body, where)
    cert = _data_or_file(user, "client-certificate", "client-cert", where)
    key = _data_or_file(user, "client-key", "client-key", where)
    if (cert is None) != (key is None):
        raise ConfigError(f"{where}: client-certificate and client-key must be set together")
    client_cert = None
    if cert is not None and key is not None:
        _check_key_pair(cert, key, where)
        client_cert = (cert, key)
    return client_cert, _token_source(user, where)


def _refuse_unsupported(body: Mapping[str, Any], where: str) -> None:
    if body.get("username") or body.get("password"):
        raise ConfigError(
            f"{where}: username/password (basic auth) is not supported; "
            "use a token, a client certificate or an exec plugin"
        )
    provider = body.get("auth-provider")
    if provider:
        name = provider.get("name") if isinstance(provider, dict) else None
        raise ConfigError(
            f"{where}: auth-provider {name!r} is deprecated and not supported; "
            "use its exec credential plugin instead"
        )
    # silently dropping impersonation would send every request with the real user's (wider) rights
    impersonation = [key for key in ("as", "as-uid", "as-groups", "as-user-extra") if body.get(key)]
    if impersonation:
        raise ConfigError(f"{where}: impersonation ({', '.join(impersonation)}) is not supported")


def _token_source(user: _Entry, where: str) -> TokenSource | None:
    token_file = _string(user.body, "tokenFile", where)
    if token_file:
        source = FileToken(_resolve(token_file, user.origin))
        try:
            source.token()  # fail at startup, not at the first request
        except ConfigError as exc:
            raise ConfigError(f"{where}: tokenFile: {exc}") from None
        return source
    token = _string(user.body, "token", where)
    if token:
        return StaticToken(token)
    spec = user.body.get("exec")
    return _exec_token(spec, user.origin, f"{where}: exec") if spec else None


def _exec_token(spec: object, origin: str, where: str) -> ExecToken:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping")
    command = _string(spec, "command", where)
    if not command:
        raise ConfigError(f"{where} has no command")
    if os.sep in command:
        # kubectl: a bare name is looked up on PATH, a path is relative to the kubeconfig file
        command = _resolve(command, origin)
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigError(f"{where}: args must be a list of strings")
    api_version = _string(spec, "apiVersion", where)
    if not api_version:
        raise ConfigError(f"{where} has no apiVersion (e.g. {EXEC_API_VERSIONS[0]})")
    if api_version not in EXEC_API_VERSIONS:
        supported = " or ".join(EXEC_API_VERSIONS)
        raise ConfigError(f"{where}: apiVersion {api_version!r} is not supported (use {supported})")
    if spec.get("interactiveMode") == "Always":
        raise ConfigError(
            f"{where}: the plugin needs a terminal (interactiveMode: Always), which the extender does not have"
        )
    # provideClusterInfo is not honoured: KUBERNETES_EXEC_INFO never carries spec.cluster
    return ExecToken(command, args, _exec_env(spec.get("env"), where), api_version)


def _exec_env(items: object, where: str) -> dict[str, str]:
    items = items or []
    if not isinstance(items, list):
        raise ConfigError(f"{where}: env must be a list of {{name, value}}")
    env: dict[str, str] = {}
    for index, item in enumerate(items):
        valid = isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value", ""), str)
        if not valid:
            raise ConfigError(f"{where}: env[{index}] must be {{name: string, value: string}}")
        env[item["name"]] = item.get("value", "")
    return env


# --- files and TLS material ---------------------------------------------------------------------


def _data_or_file(entry: _Entry, field: str, kind: str, where: str) -> str | None:
    """The path for ``field``: its ``-data`` twin written to a private file (it wins, as in kubectl), or the file."""
    data = _string(entry.body, f"{field}-data", where)
    if data:
        try:
            decoded = base64.b64decode("".join(data.split()), validate=True)
        except binascii.Error:
            raise ConfigError(f"{where}: {field}-data is not valid base64") from None
        return _write_private(decoded, kind)
    path = _string(entry.body, field, where)
    if not path:
        return None
    path = _resolve(path, entry.origin)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{where}: {field} {path}: {_reason(exc)}") from None
    return path


def _resolve(path: str, origin: str) -> str:
    """kubectl's rule: a relative path is relative to the kubeconfig file that holds it."""
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(origin)), path))


def _check_ca(path: str, what: str) -> None:
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"{what} {path} is not a readable PEM certificate bundle: {_reason(exc)}") from None


def _check_key_pair(cert: str, key: str, where: str) -> None:
    """Catch a mismatched or encrypted key now, not as an obscure handshake failure later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # an empty password: an encrypted key fails here instead of OpenSSL prompting on a terminal
        context.load_cert_chain(cert, key, password=b"")
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{where}: client certificate {cert} and key {key} do not load as a pair "
            f"(mismatched, not PEM, or an encrypted key): {_reason(exc)}"
        ) from None


_private_lock = threading.Lock()
_private_dir: str | None = None


def _write_private(data: bytes, kind: str) -> str:
    """Write decoded ``*-data`` to a 0600 file, because ``requests`` takes certificates and keys as paths."""
    directory = _private_directory()
    # content-addressed: loading the same kubeconfig again adds no files
    path = os.path.join(directory, f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.pem")
    if not os.path.exists(path):
        fd, partial = tempfile.mkstemp(dir=directory)  # created 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    return path


def _private_directory() -> str:
    global _private_dir
    with _private_lock:
        if _private_dir is None:
            _private_dir = tempfile.mkdtemp(prefix="extender-kube-")  # created 0700
            atexit.register(_remove_private_directory, _private_dir, os.getpid())
        return _private_dir


def _remove_private_directory(path: str, owner: int) -> None:
    # forked workers (gunicorn --preload) inherit this handler and must not delete their siblings' files
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


# --- small helpers ------------------------------------------------------------------------------


def _string(body: Mapping[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {key} must be a string, got {type(value).__name__}")


def _names(entries: Mapping[str, object]) -> str:
    return ", ".join(sorted(entries)) or "none"


def _reason(exc: Exception) -> str:
    strerror = getattr(exc, "strerror", None)
    return str(strerror) if strerror else str(exc)


__all__ = [
    "ClusterConfig",
    "ConfigError",
    "ExecToken",
    "FileToken",
    "StaticToken",
    "TokenSource",
    "in_cluster_config",
    "kubeconfig_config",
    "load_config",
]
