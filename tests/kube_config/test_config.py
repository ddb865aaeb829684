"""Connection configs: in-cluster, kubeconfig (kubectl's merge and path rules), token sources,
and proof against a real TLS server that ``requests`` accepts what :class:`ClusterConfig` gives it.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from extender.kube import config as kube_config
from extender.kube.config import (
    ClusterConfig,
    ConfigError,
    ExecToken,
    FileToken,
    StaticToken,
    in_cluster_config,
    kubeconfig_config,
    load_config,
)
from tests.kube_config.tls import CLIENT_CN, HttpsServer, Pki

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
ROOT = Path(__file__).resolve().parents[2]
SERVER = {"server": "https://h"}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    *,
    clusters: dict[str, Any] | None = None,
    users: dict[str, Any] | None = None,
    contexts: dict[str, Any] | None = None,
    current: str | None = None,
) -> Path:
    """Write a kubeconfig from ``{name: body}`` mappings."""
    document: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    sections = (("clusters", "cluster", clusters), ("users", "user", users), ("contexts", "context", contexts))
    for section, key, entries in sections:
        document[section] = [{"name": name, key: body} for name, body in (entries or {}).items()]
    if current is not None:
        document["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def single(path: Path, cluster: dict[str, Any], user: dict[str, Any] | None = None) -> Path:
    """A kubeconfig with one context ``ctx`` (current) joining cluster ``c`` and, if given, user ``u``."""
    context = {"cluster": "c", "user": "u"} if user is not None else {"cluster": "c"}
    users = {"u": user} if user is not None else {}
    return write_kubeconfig(path, clusters={"c": cluster}, users=users, contexts={"ctx": context}, current="ctx")


def error_of(action: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as err:
        action()
    return str(err.value)


# --- ClusterConfig ------------------------------------------------------------------------------


def test_verify_is_false_when_insecure_else_the_ca_file_else_system_cas() -> None:
    assert ClusterConfig("https://h", ca_file="/ca.crt", insecure=True).verify() is False
    assert ClusterConfig("https://h", ca_file="/ca.crt").verify() == "/ca.crt"
    assert ClusterConfig("https://h").verify() is True


def test_headers_carry_the_current_token_or_nothing() -> None:
    assert ClusterConfig("https://h", token_source=StaticToken("abc")).headers() == {"Authorization": "Bearer abc"}
    assert ClusterConfig("https://h").headers() == {}


def test_server_loses_its_trailing_slash_and_the_token_stays_out_of_repr() -> None:
    config = ClusterConfig("https://h:6443/", token_source=StaticToken("very-secret"))
    assert config.server == "https://h:6443"
    assert "very-secret" not in repr(config)


# --- FileToken ----------------------------------------------------------------------------------


def write_token(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_file_token_is_reread_when_the_mtime_changes(tmp_path: Path) -> None:
    path, clock = tmp_path / "token", FakeClock()
    write_token(path, "aaa\n", 1_000_000_000)
    source = FileToken(str(path), clock=clock)
    assert source.token() == "aaa"  # surrounding whitespace is not part of the token
    write_token(path, "bbb", 1_000_000_000)
    clock.now += 30
    assert source.token() == "aaa"  # same mtime, not yet due: cached
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    assert source.token() == "bbb"


def test_file_token_is_reread_after_reread_after_seconds(tmp_path: Path) -> None:
    path, clock = tmp_path / "token", FakeClock()
    write_token(path, "aaa", 1_000_000_000)
    source = FileToken(str(path), reread_after=10, clock=clock)
    assert source.token() == "aaa"
    write_token(path, "bbb", 1_000_000_000)
    clock.now += 9.9
    assert source.token() == "aaa"
    clock.now += 0.1
    assert source.token() == "bbb"


def test_file_token_is_reread_right_after_invalidate(tmp_path: Path) -> None:
    path, clock = tmp_path / "token", FakeClock()
    write_token(path, "aaa", 1_000_000_000)
    source = FileToken(str(path), clock=clock)
    assert source.token() == "aaa"
    write_token(path, "bbb", 1_000_000_000)
    assert source.token() == "aaa"
    source.invalidate()
    assert source.token() == "bbb"


def test_file_token_keeps_the_last_good_token_until_it_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path, "aaa", 1_000_000_000)
    source = FileToken(str(path), clock=FakeClock())
    assert source.token() == "aaa"
    path.unlink()  # e.g. caught in the middle of a rotation
    assert source.token() == "aaa"
    source.invalidate()
    assert error_of(source.token) == f"cannot read token file {path}: No such file or directory"


def test_file_token_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert error_of(FileToken(str(missing)).token) == f"cannot read token file {missing}: No such file or directory"
    (tmp_path / "empty").write_text("\n")
    assert error_of(FileToken(str(tmp_path / "empty")).token) == f"token file {tmp_path / 'empty'} is empty"


# --- in-cluster ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "server"),
    [("10.96.0.1", "https://10.96.0.1:443"), ("fd00:10:96::1", "https://[fd00:10:96::1]:443")],
)
def test_in_cluster_config(sa_dir: Path, host: str, server: str) -> None:
    config = in_cluster_config({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}, str(sa_dir))
    assert config.server == server
    assert config.ca_file == str(sa_dir / "ca.crt") and config.verify() == str(sa_dir / "ca.crt")
    assert isinstance(config.token_source, FileToken)
    assert config.headers() == {"Authorization": "Bearer sa-token"}
    assert config.client_cert is None and not config.insecure
    assert config.source == "in-cluster"


def test_in_cluster_reads_os_environ_by_default(sa_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert in_cluster_config(sa_dir=str(sa_dir)).server == "https://10.0.0.1:6443"


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"),
        ({"KUBERNETES_SERVICE_PORT": "443"}, "KUBERNETES_SERVICE_HOST"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": ""}, "KUBERNETES_SERVICE_PORT"),
    ],
)
def test_in_cluster_without_the_service_env(sa_dir: Path, environ: dict[str, str], missing: str) -> None:
    assert error_of(lambda: in_cluster_config(environ, str(sa_dir))) == (
        f"in-cluster: {missing} not set (not running in a pod?)"
    )


IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_cluster_without_a_token(sa_dir: Path) -> None:
    (sa_dir / "token").unlink()
    assert error_of(lambda: in_cluster_config(IN_CLUSTER_ENV, str(sa_dir))) == (
        f"in-cluster: cannot read token file {sa_dir / 'token'}: No such file or directory "
        "(is automountServiceAccountToken off?)"
    )
    (sa_dir / "token").write_text("")
    assert "is empty" in error_of(lambda: in_cluster_config(IN_CLUSTER_ENV, str(sa_dir)))


def test_in_cluster_without_a_ca_bundle(sa_dir: Path) -> None:
    (sa_dir / "ca.crt").unlink()
    message = error_of(lambda: in_cluster_config(IN_CLUSTER_ENV, str(sa_dir)))
    assert message.startswith(f"in-cluster: CA bundle {sa_dir / 'ca.crt'} is not a readable PEM certificate bundle")
    (sa_dir / "ca.crt").write_text("not a certificate")
    assert "is not a readable PEM certificate bundle" in error_of(lambda: in_cluster_config(IN_CLUSTER_ENV, str(sa_dir)))


# --- kubeconfig: what each field becomes ----------------------------------------------------------


def test_kubeconfig_with_a_token(tmp_path: Path, pki: Pki) -> None:
    cluster = {"server": "https://10.0.0.1:6443/", "certificate-authority": str(pki.ca_crt)}
    path = single(tmp_path / "config", cluster, {"token": "abc"})
    config = kubeconfig_config(str(path))
    assert config.server == "https://10.0.0.1:6443"
    assert config.ca_file == str(pki.ca_crt) and config.verify() == str(pki.ca_crt)
    assert isinstance(config.token_source, StaticToken)
    assert config.headers() == {"Authorization": "Bearer abc"}
    assert config.client_cert is None and config.tls_server_name is None
    assert config.source == f"kubeconfig {path} (context ctx)"


def test_kubeconfig_with_a_token_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("from-file\n")
    config = kubeconfig_config(str(single(tmp_path / "config", {"server": "https://h"}, {"tokenFile": "secrets/token"})))
    assert isinstance(config.token_source, FileToken)
    assert config.token_source.path == str(tmp_path / "secrets" / "token")
    assert config.headers() == {"Authorization": "Bearer from-file"}


def test_a_token_file_beats_a_token_which_beats_exec(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    exec_spec = {"command": "never-run", "apiVersion": V1}
    both = kubeconfig_config(str(single(tmp_path / "a", {"server": "https://h"}, {"token": "t", "tokenFile": "token"})))
    assert both.headers() == {"Authorization": "Bearer from-file"}
    token_and_exec = kubeconfig_config(str(single(tmp_path / "b", SERVER, {"token": "t", "exec": exec_spec})))
    assert token_and_exec.headers() == {"Authorization": "Bearer t"}


def test_kubeconfig_with_client_certificate_files_relative_to_the_kubeconfig(tmp_path: Path, pki: Pki) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "client.crt").write_bytes(pki.client_crt.read_bytes())
    (certs / "client.key").write_bytes(pki.client_key.read_bytes())
    (tmp_path / "ca.crt").write_bytes(pki.ca_crt.read_bytes())
    path = single(
        tmp_path / "conf" / "config",
        {"server": "https://h", "certificate-authority": "../ca.crt"},
        {"client-certificate": "../certs/client.crt", "client-key": str(certs / "client.key")},
    )
    config = kubeconfig_config(str(path))
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.client_cert == (str(certs / "client.crt"), str(certs / "client.key"))
    assert config.token_source is None and config.headers() == {}


def test_data_fields_become_private_files(tmp_path: Path, pki: Pki) -> None:
    path = single(
        tmp_path / "config",
        # base64 wrapped over lines, as some tools write it, is accepted too
        {"server": "https://h", "certificate-authority-data": textwrap.fill(b64(pki.ca_crt), 64)},
        {"client-certificate-data": b64(pki.client_crt), "client-key-data": b64(pki.client_key)},
    )
    config = kubeconfig_config(str(path))
    assert config.ca_file is not None and config.client_cert is not None
    cert_file, key_file = config.client_cert
    directory = Path(config.ca_file).parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for written, original in ((config.ca_file, pki.ca_crt), (cert_file, pki.client_crt), (key_file, pki.client_key)):
        assert Path(written).parent == directory
        assert Path(written).read_bytes() == original.read_bytes()
        assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    assert kubeconfig_config(str(path)).client_cert == config.client_cert  # reloading writes no new files


def test_data_fields_win_over_file_fields(tmp_path: Path, pki: Pki) -> None:
    path = single(
        tmp_path / "config",
        {"server": "https://h", "certificate-authority": "missing.crt", "certificate-authority-data": b64(pki.ca_crt)},
    )
    config = kubeconfig_config(str(path))
    assert config.ca_file is not None and Path(config.ca_file).read_bytes() == pki.ca_crt.read_bytes()


def test_private_files_are_removed_at_exit_but_not_by_forked_workers(tmp_path: Path, pki: Pki) -> None:
    path = single(tmp_path / "config", {"server": "https://h", "certificate-authority-data": b64(pki.ca_crt)})
    script = f"""
import os, sys
from extender.kube.config import kubeconfig_config
directory = os.path.dirname(kubeconfig_config({str(path)!r}).ca_file)
print(directory)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    sys.exit(0)  # a worker exiting normally runs the atexit handlers it inherited
os.waitpid(pid, 0)
print(os.path.isdir(directory))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    directory, still_there = result.stdout.split()
    assert still_there == "True"
    assert not os.path.exists(directory)


def test_insecure_skip_tls_verify_and_tls_server_name(tmp_path: Path) -> None:
    path = single(
        tmp_path / "config", {"server": "https://h", "insecure-skip-tls-verify": True, "tls-server-name": "kubernetes"}
    )
    config = kubeconfig_config(str(path))
    assert config.insecure and config.verify() is False
    assert config.tls_server_name == "kubernetes"


def test_a_server_without_a_scheme_gets_https(tmp_path: Path) -> None:
    assert kubeconfig_config(str(single(tmp_path / "config", {"server": "10.0.0.1:6443"}))).server == "https://10.0.0.1:6443"


def test_proxy_url_and_unknown_fields_are_ignored(tmp_path: Path) -> None:
    path = single(tmp_path / "config", {"server": "https://h", "proxy-url": "http://proxy:3128", "extensions": []})
    assert kubeconfig_config(str(path)).server == "https://h"


# --- kubeconfig: which file and which context -----------------------------------------------------


def two_files(tmp_path: Path, pki: Pki, *, a_current: str | None = None) -> tuple[Path, Path]:
    """Two kubeconfigs that both define cluster ``shared``, user ``u-a`` and context ``ctx-a``."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "token").write_text("token-a")
    a = write_kubeconfig(
        tmp_path / "a" / "config",
        clusters={"shared": {"server": "https://a.example:6443"}},
        users={"u-a": {"tokenFile": "token"}},
        contexts={"ctx-a": {"cluster": "shared", "user": "u-a"}},
        current=a_current,
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ca.crt").write_bytes(pki.ca_crt.read_bytes())
    b = write_kubeconfig(
        tmp_path / "b" / "config",
        clusters={
            "shared": {"server": "https://b.example"},
            "only-b": {"server": "https://only-b", "certificate-authority": "ca.crt"},
        },
        users={"u-a": {"token": "shadowed"}, "u-b": {"token": "token-b"}},
        contexts={"ctx-a": {"cluster": "only-b", "user": "u-b"}, "ctx-b": {"cluster": "only-b", "user": "u-b"}},
        current="ctx-b",
    )
    return a, b


def test_kubeconfig_list_merges_like_kubectl(tmp_path: Path, pki: Pki) -> None:
    a, b = two_files(tmp_path, pki)
    environ = {"KUBECONFIG": os.pathsep.join([str(a), str(tmp_path / "missing"), str(b)])}
    config = kubeconfig_config(environ=environ)  # current-context: a sets none, so b's
    assert config.server == "https://only-b"
    assert config.ca_file == str(tmp_path / "b" / "ca.crt")  # relative to b, which defined it
    assert config.headers() == {"Authorization": "Bearer token-b"}
    assert config.source == f"kubeconfig {a}{os.pathsep}{b} (context ctx-b)"
    first = kubeconfig_config(context="ctx-a", environ=environ)  # a's ctx-a, shared and u-a win
    assert first.server == "https://a.example:6443"
    assert first.headers() == {"Authorization": "Bearer token-a"}  # tokenFile relative to a


def test_the_first_current_context_wins(tmp_path: Path, pki: Pki) -> None:
    a, b = two_files(tmp_path, pki, a_current="ctx-a")
    config = kubeconfig_config(environ={"KUBECONFIG": f"{a}{os.pathsep}{b}"})
    assert config.server == "https://a.example:6443"


def test_an_explicit_path_ignores_kubeconfig_env(tmp_path: Path, pki: Pki) -> None:
    a, b = two_files(tmp_path, pki)
    assert kubeconfig_config(str(b), environ={"KUBECONFIG": str(a)}).server == "https://only-b"


def test_the_default_is_home_kube_config(tmp_path: Path) -> None:
    single(tmp_path / "home" / ".kube" / "config", {"server": "https://home"})
    assert kubeconfig_config(environ={"HOME": str(tmp_path / "home")}).server == "https://home"
    assert kubeconfig_config(environ={"HOME": str(tmp_path / "home"), "KUBECONFIG": ""}).server == "https://home"


def test_context_selection(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters={"one": {"server": "https://one"}, "two": {"server": "https://two"}},
        contexts={"a": {"cluster": "one"}, "b": {"cluster": "two"}},
        current="a",
    )
    assert kubeconfig_config(str(path)).server == "https://one"
    config = kubeconfig_config(str(path), context="b")
    assert config.server == "https://two" and config.source == f"kubeconfig {path} (context b)"


# --- kubeconfig: errors say which file and what is wrong ------------------------------------------


def test_context_not_found(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", clusters={"c": {"server": "https://h"}}, contexts={"b": {"cluster": "c"}, "a": {"cluster": "c"}}
    )
    assert error_of(lambda: kubeconfig_config(str(path), "y")) == (
        f"kubeconfig {path}: context 'y' not found (contexts: a, b)"
    )
    assert error_of(lambda: kubeconfig_config(str(path))) == (
        f"kubeconfig {path}: no context given and current-context is not set (contexts: a, b)"
    )


def test_cluster_and_user_not_found(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://h"}},
        users={"u": {"token": "t"}},
        contexts={"no-cluster": {"cluster": "gone", "user": "u"}, "no-user": {"cluster": "c", "user": "gone"}, "empty": {}},
    )
    assert error_of(lambda: kubeconfig_config(str(path), "no-cluster")) == (
        f"kubeconfig {path}: cluster 'gone' (from context 'no-cluster') not found (clusters: c)"
    )
    assert error_of(lambda: kubeconfig_config(str(path), "no-user")) == (
        f"kubeconfig {path}: user 'gone' (from context 'no-user') not found (users: u)"
    )
    assert error_of(lambda: kubeconfig_config(str(path), "empty")) == f"kubeconfig {path}: context 'empty' names no cluster"


def test_files_that_are_missing_or_not_kubeconfigs(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert error_of(lambda: kubeconfig_config(str(missing))) == f"kubeconfig {missing}: file not found"
    environ = {"KUBECONFIG": f"{missing}{os.pathsep}{tmp_path / 'also-missing'}"}
    assert error_of(lambda: kubeconfig_config(environ=environ)) == (
        f"kubeconfig: none of the files in $KUBECONFIG exists ({missing}, {tmp_path / 'also-missing'})"
    )
    assert error_of(lambda: kubeconfig_config(environ={"HOME": str(tmp_path)})) == (
        f"kubeconfig: $KUBECONFIG is not set and {tmp_path / '.kube' / 'config'} does not exist"
    )
    bad = tmp_path / "bad"
    bad.write_text("clusters: [\n")
    assert error_of(lambda: kubeconfig_config(str(bad))).startswith(f"kubeconfig {bad}: not valid YAML: ")
    bad.write_text("- a list\n")
    assert error_of(lambda: kubeconfig_config(str(bad))) == f"kubeconfig {bad}: must be a mapping, got list"
    bad.write_text("clusters: {c: {server: x}}\n")
    assert error_of(lambda: kubeconfig_config(str(bad))) == f"kubeconfig {bad}: clusters must be a list"
    bad.write_text("users: [{user: {token: t}}]\n")
    assert error_of(lambda: kubeconfig_config(str(bad))) == f"kubeconfig {bad}: users[0] has no name"
    bad.write_text("")
    assert error_of(lambda: kubeconfig_config(str(bad))) == (
        f"kubeconfig {bad}: no context given and current-context is not set (contexts: none)"
    )


C = "kubeconfig {path}: cluster 'c'"
U = "kubeconfig {path}: user 'u'"


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        ({}, None, C + " has no server"),
        ({"server": 6443}, None, C + ": server must be a string, got int"),
        ({"server": "ftp://h"}, None, C + ": server 'ftp://h' is not an http(s) URL"),
        ({"server": "https://h:port"}, None, C + ": server 'https://h:port' is not an http(s) URL"),
        ({"server": "https://h", "insecure-skip-tls-verify": "yes"}, None, C + ": insecure-skip-tls-verify must be true or false"),
        (
            {"server": "https://h", "insecure-skip-tls-verify": True, "certificate-authority": "{ca_crt}"},
            None,
            C + ": insecure-skip-tls-verify cannot be combined with a certificate authority (kubectl refuses it too)",
        ),
        (
            {"server": "https://h", "certificate-authority": "nope.crt"},
            None,
            C + ": certificate-authority {dir}/nope.crt: No such file or directory",
        ),
        ({"server": "https://h", "certificate-authority-data": "%%%"}, None, C + ": certificate-authority-data is not valid base64"),
        (
            {"server": "https://h", "certificate-authority-data": base64.b64encode(b"junk").decode()},
            None,
            C + ": certificate authority {tmp}/",  # the private copy's name is random
        ),
        (SERVER, {"username": "admin", "password": "x"}, U + ": username/password (basic auth) is not supported"),
        (
            {"server": "https://h"},
            {"auth-provider": {"name": "gcp", "config": {}}},
            U + ": auth-provider 'gcp' is deprecated and not supported; use its exec credential plugin instead",
        ),
        (SERVER, {"token": "t", "as": "admin", "as-groups": ["x"]}, U + ": impersonation (as, as-groups) is not supported"),
        (SERVER, {"token": 123}, U + ": token must be a string, got int"),
        (SERVER, {"client-certificate": "{client_crt}"}, U + ": client-certificate and client-key must be set together"),
        (SERVER, {"client-key": "{client_key}"}, U + ": client-certificate and client-key must be set together"),
        (
            {"server": "https://h"},
            {"client-certificate": "{client_crt}", "client-key": "{server_key}"},
            U + ": client certificate {client_crt} and key {server_key} do not load as a pair",
        ),
        (
            {"server": "https://h"},
            {"client-certificate": "{client_crt}", "client-key": "{client_key_encrypted}"},
            U + ": client certificate {client_crt} and key {client_key_encrypted} do not load as a pair",
        ),
        (SERVER, {"tokenFile": "gone"}, U + ": tokenFile: cannot read token file {dir}/gone: No such file or directory"),
        (SERVER, {"exec": {"apiVersion": V1}}, U + ": exec has no command"),
        (SERVER, {"exec": {"command": "p"}}, U + f": exec has no apiVersion (e.g. {V1})"),
        (
            {"server": "https://h"},
            {"exec": {"command": "p", "apiVersion": "client.authentication.k8s.io/v1alpha1"}},
            U + f": exec: apiVersion 'client.authentication.k8s.io/v1alpha1' is not supported (use {V1} or {V1BETA1})",
        ),
        (SERVER, {"exec": {"command": "p", "apiVersion": V1, "args": "-x"}}, U + ": exec: args must be a list of strings"),
        (
            {"server": "https://h"},
            {"exec": {"command": "p", "apiVersion": V1, "env": [{"name": "A", "value": 1}]}},
            U + ": exec: env[0] must be {{name: string, value: string}}",
        ),
        (
            {"server": "https://h"},
            {"exec": {"command": "p", "apiVersion": V1, "interactiveMode": "Always"}},
            U + ": exec: the plugin needs a terminal (interactiveMode: Always), which the extender does not have",
        ),
    ],
)
def test_invalid_clusters_and_users(
    tmp_path: Path, pki: Pki, cluster: dict[str, Any], user: dict[str, Any] | None, message: str
) -> None:
    paths = {name: str(value) for name, value in vars(pki).items()}

    def fill(value: Any) -> Any:
        return value.format(**paths) if isinstance(value, str) else value

    cluster = {key: fill(value) for key, value in cluster.items()}
    user = {key: fill(value) for key, value in user.items()} if user is not None else None
    path = single(tmp_path / "config", cluster, user)
    expected = message.format(path=path, dir=tmp_path, tmp=kube_config._private_directory(), **paths)
    assert error_of(lambda: kubeconfig_config(str(path))).startswith(expected)


# --- ExecToken ----------------------------------------------------------------------------------

PLUGIN = """\
import json, os, sys
counter = os.environ["PLUGIN_COUNTER"]
runs = (int(open(counter).read()) if os.path.exists(counter) else 0) + 1
open(counter, "w").write(str(runs))
open(counter + ".info", "w").write(os.environ["KUBERNETES_EXEC_INFO"])
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "fail":
    print("boom: credentials expired, run login", file=sys.stderr)
    sys.exit(1)
if mode == "garbage":
    print("Please log in at https://login.example")
    sys.exit(0)
status = {"token": f"token-{runs}"}
if mode == "cert":
    status = {"clientCertificateData": "PEM", "clientKeyData": "PEM"}
elif mode == "no-token":
    status = {}
elif os.environ.get("PLUGIN_EXPIRES"):
    status["expirationTimestamp"] = os.environ["PLUGIN_EXPIRES"]
api_version = os.environ.get("PLUGIN_API_VERSION") or json.loads(os.environ["KUBERNETES_EXEC_INFO"])["apiVersion"]
print(json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}))
"""

EXPIRES = "2030-01-01T00:00:00Z"
EXPIRES_AT = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()


class Plugin:
    """A credential plugin script that counts its runs and records the exec info it was given."""

    def __init__(self, directory: Path) -> None:
        self.script = directory / "plugin.py"
        self.script.write_text(PLUGIN)
        self.counter = directory / "runs"

    def token(self, mode: str = "ok", api_version: str = V1, clock: FakeClock | None = None, **env: str) -> ExecToken:
        return ExecToken(
            sys.executable,
            [str(self.script), mode],
            {"PLUGIN_COUNTER": str(self.counter), **env},
            api_version,
            clock=clock or FakeClock(),
        )

    @property
    def runs(self) -> int:
        return int(self.counter.read_text()) if self.counter.exists() else 0

    @property
    def exec_info(self) -> Any:
        return json.loads(Path(f"{self.counter}.info").read_text())


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


@pytest.mark.parametrize("api_version", [V1, V1BETA1])
def test_exec_token_is_cached_until_shortly_before_it_expires(plugin: Plugin, api_version: str) -> None:
    clock = FakeClock(EXPIRES_AT - 3600)
    source = plugin.token(api_version=api_version, clock=clock, PLUGIN_EXPIRES=EXPIRES)
    assert source.token() == "token-1"
    assert plugin.exec_info == {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    clock.now = EXPIRES_AT - 61
    assert source.token() == "token-1" and plugin.runs == 1
    clock.now = EXPIRES_AT - 60
    assert source.token() == "token-2" and plugin.runs == 2


def test_a_short_lived_exec_token_is_reused_for_half_its_life(plugin: Plugin) -> None:
    clock = FakeClock(EXPIRES_AT - 30)
    source = plugin.token(clock=clock, PLUGIN_EXPIRES=EXPIRES)
    assert source.token() == "token-1"
    clock.now = EXPIRES_AT - 16
    assert source.token() == "token-1"
    clock.now = EXPIRES_AT - 15
    assert source.token() == "token-2"


def test_exec_token_without_expiry_is_cached_until_invalidate(plugin: Plugin) -> None:
    clock = FakeClock()
    source = plugin.token(clock=clock)
    assert source.token() == "token-1"
    clock.now += 10 * 365 * 86400
    assert source.token() == "token-1" and plugin.runs == 1
    source.invalidate()
    assert source.token() == "token-2" and source.token() == "token-2" and plugin.runs == 2


def test_exec_token_is_rerun_after_invalidate_even_before_expiry(plugin: Plugin) -> None:
    source = plugin.token(clock=FakeClock(EXPIRES_AT - 3600), PLUGIN_EXPIRES=EXPIRES)
    assert source.token() == "token-1"
    source.invalidate()
    assert source.token() == "token-2"


def test_exec_plugin_failures(plugin: Plugin) -> None:
    where = f"exec plugin {sys.executable!r}"
    assert error_of(plugin.token("fail").token) == f"{where}: exited with code 1: boom: credentials expired, run login"
    assert error_of(plugin.token("garbage").token).startswith(
        f"{where}: stdout is not JSON (Expecting value: line 1 column 1"
    )
    assert error_of(plugin.token("no-token").token) == f"{where}: the ExecCredential has no status.token"
    assert error_of(plugin.token("cert").token) == (
        f"{where}: returned a client certificate (status.clientCertificateData); "
        "client certificates from exec plugins are not supported, only status.token"
    )
    assert error_of(plugin.token(PLUGIN_API_VERSION=V1BETA1).token) == (
        f"{where}: returned apiVersion {V1BETA1!r}, the kubeconfig asks for {V1!r}"
    )
    assert error_of(plugin.token(PLUGIN_EXPIRES="tomorrow").token) == (
        f"{where}: status.expirationTimestamp 'tomorrow' is not an RFC 3339 time"
    )


def test_exec_plugin_that_is_not_installed(tmp_path: Path) -> None:
    assert error_of(ExecToken("extender-no-such-plugin", [], {}, V1).token) == (
        "exec plugin 'extender-no-such-plugin': command not found (is it installed and on PATH?)"
    )
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    assert error_of(ExecToken(str(script), [], {}, V1).token) == (
        f"exec plugin {str(script)!r}: cannot run it: Permission denied"
    )


def test_exec_token_refuses_api_versions_it_does_not_speak() -> None:
    assert error_of(lambda: ExecToken("p", [], {}, "client.authentication.k8s.io/v1alpha1")) == (
        f"exec plugin 'p': apiVersion 'client.authentication.k8s.io/v1alpha1' is not supported (use {V1} or {V1BETA1})"
    )


def test_exec_plugin_that_hangs_is_given_up_on() -> None:
    seen: dict[str, Any] = {}

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs, argv=argv)
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    assert error_of(ExecToken("slow", ["--x"], {"A": "1"}, V1, run=run).token) == "exec plugin 'slow': no answer after 60 s"
    assert seen["argv"] == ["slow", "--x"] and seen["stdin"] == subprocess.DEVNULL
    assert seen["env"]["A"] == "1" and json.loads(seen["env"]["KUBERNETES_EXEC_INFO"])["apiVersion"] == V1


def test_kubeconfig_exec_runs_a_command_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "plugin"
    command.write_text(f"#!{sys.executable}\n{PLUGIN}")
    command.chmod(0o755)
    exec_spec = {
        "command": "./bin/plugin",
        "args": ["ok"],
        "env": [{"name": "PLUGIN_COUNTER", "value": str(tmp_path / "runs")}],
        "apiVersion": V1BETA1,
        "interactiveMode": "Never",
    }
    config = kubeconfig_config(str(single(tmp_path / "config", {"server": "https://h"}, {"exec": exec_spec})))
    assert isinstance(config.token_source, ExecToken)
    assert config.token_source.command == str(command)
    assert not (tmp_path / "runs").exists()  # the plugin runs on first use, not at load
    assert config.headers() == {"Authorization": "Bearer token-1"}
    assert config.headers() == {"Authorization": "Bearer token-1"}
    assert (tmp_path / "runs").read_text() == "1"


# --- load_config --------------------------------------------------------------------------------


@pytest.fixture
def kubeconfig_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose $KUBECONFIG has contexts ``main`` (current) and ``other``."""
    path = write_kubeconfig(
        tmp_path / "kube" / "config",
        clusters={"main": {"server": "https://main"}, "other": {"server": "https://other"}},
        contexts={"main": {"cluster": "main"}, "other": {"cluster": "other"}},
        current="main",
    )
    return {"KUBECONFIG": str(path), "HOME": str(tmp_path)}


def test_load_config_prefers_an_explicit_kubeconfig_or_context(
    tmp_path: Path, sa_dir: Path, kubeconfig_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT_DIR", str(sa_dir))
    environ = {**kubeconfig_env, **IN_CLUSTER_ENV}
    explicit = single(tmp_path / "explicit", {"server": "https://explicit"})
    assert load_config(str(explicit), environ=environ).server == "https://explicit"
    assert load_config(context="other", environ=environ).server == "https://other"
    assert load_config(environ=environ).source == "in-cluster"


def test_load_config_falls_back_to_kubeconfig(
    sa_dir: Path, kubeconfig_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(environ=kubeconfig_env).server == "https://main"  # not in a pod
    assert load_config("", "", environ=kubeconfig_env).server == "https://main"  # empty flags mean unset
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT_DIR", str(sa_dir))
    (sa_dir / "token").unlink()
    assert load_config(environ={**kubeconfig_env, **IN_CLUSTER_ENV}).server == "https://main"  # in a pod, no token


def test_load_config_says_what_it_tried(tmp_path: Path) -> None:
    assert error_of(lambda: load_config(environ={"HOME": str(tmp_path)})) == (
        "no usable Kubernetes connection config; tried "
        "in-cluster: KUBERNETES_SERVICE_HOST is not set (not running in a pod); "
        f"kubeconfig: $KUBECONFIG is not set and {tmp_path / '.kube' / 'config'} does not exist"
    )


# --- end to end with requests against a real TLS server --------------------------------------------


def get(config: ClusterConfig) -> Any:
    response = requests.get(
        config.server + "/api", verify=config.verify(), cert=config.client_cert, headers=config.headers(), timeout=10
    )
    response.raise_for_status()
    return response.json()


@pytest.mark.usefixtures("no_proxy")
def test_mutual_tls_from_data_fields(tmp_path: Path, pki: Pki, https_server: Callable[..., HttpsServer]) -> None:
    server = https_server(require_client_cert=True)
    path = single(
        tmp_path / "config",
        {"server": server.url, "certificate-authority-data": b64(pki.ca_crt)},
        {"client-certificate-data": b64(pki.client_crt), "client-key-data": b64(pki.client_key)},
    )
    config = kubeconfig_config(str(path))
    assert get(config) == {"path": "/api", "authorization": None, "client_cn": CLIENT_CN}
    with pytest.raises(requests.exceptions.ConnectionError):  # the server really does require the certificate
        requests.get(server.url, verify=config.verify(), timeout=10)


@pytest.mark.usefixtures("no_proxy")
def test_token_auth(tmp_path: Path, pki: Pki, https_server: Callable[..., HttpsServer]) -> None:
    server = https_server()
    path = single(tmp_path / "config", {"server": server.url, "certificate-authority": str(pki.ca_crt)}, {"token": "sekret"})
    assert get(kubeconfig_config(str(path))) == {"path": "/api", "authorization": "Bearer sekret", "client_cn": None}


@pytest.mark.usefixtures("no_proxy")
def test_exec_token_auth(tmp_path: Path, pki: Pki, plugin: Plugin, https_server: Callable[..., HttpsServer]) -> None:
    server = https_server()
    exec_spec = {
        "command": sys.executable,
        "args": [str(plugin.script)],
        "env": [{"name": "PLUGIN_COUNTER", "value": str(plugin.counter)}],
        "apiVersion": V1,
    }
    path = single(tmp_path / "config", {"server": server.url, "certificate-authority": str(pki.ca_crt)}, {"exec": exec_spec})
    assert get(kubeconfig_config(str(path)))["authorization"] == "Bearer token-1"


@pytest.mark.usefixtures("no_proxy")
def test_in_cluster_end_to_end(sa_dir: Path, https_server: Callable[..., HttpsServer]) -> None:
    server = https_server()
    host, port = server.server_address[:2]
    config = in_cluster_config({"KUBERNETES_SERVICE_HOST": str(host), "KUBERNETES_SERVICE_PORT": str(port)}, str(sa_dir))
    assert get(config)["authorization"] == "Bearer sa-token"


@pytest.mark.usefixtures("no_proxy")
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_tls_verify_connects_without_a_ca(tmp_path: Path, https_server: Callable[..., HttpsServer]) -> None:
    server = https_server()
    path = single(tmp_path / "config", {"server": server.url, "insecure-skip-tls-verify": True}, {"token": "t"})
    assert get(kubeconfig_config(str(path)))["authorization"] == "Bearer t"


@pytest.mark.usefixtures("no_proxy")
def test_without_a_ca_the_server_certificate_is_refused(tmp_path: Path, https_server: Callable[..., HttpsServer]) -> None:
    server = https_server()
    config = kubeconfig_config(str(single(tmp_path / "config", {"server": server.url}, {"token": "t"})))
    assert config.verify() is True
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(config)
