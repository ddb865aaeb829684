"""No credential ever reaches the log, the probes or a reply, whatever the API server does.

A real ``extender serve`` at debug level, from a kubeconfig carrying a bearer token (and one
carrying a client key), is driven through API errors on its watch and its bind verb: 401,
403, 429, 500, a hang, connection refused. Everything it says (its whole output, /healthz,
/readyz, every bind reply) is searched for the secret. Each bind class is also checked for
the short Error kube-scheduler will show.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.conftest import eventually, fixture
from tests.kube.fake_apiserver import TOO_MANY_REQUESTS_TEXT, FakeApiServer
from tests.kube.live import live_extender, write_kubeconfig
from tests.live_server import Server
from tests.kube.test_binder import BINDING, RBAC_DENIAL
from tests.kube.test_names_mode import POLICY
from tests.kube.test_readiness import WATCH_DENIED
from tests.kube.tls import TlsFiles

GPU_BIND = fixture("kube-scheduler-v1.30", "node-cache", "00003-bind-gpu-1")  # gpu-1 to node-00002
WHERE = "binding pod default/gpu-1 to node node-00002"


class Transcript:
    """Everything the server said over HTTP, to search with its log."""

    def __init__(self, live: Server) -> None:
        self.live = live
        self.said: list[str] = []

    def probes(self) -> None:
        self.said += [self.live.get("/healthz").text, self.live.get("/readyz").text]

    def bind(self) -> str:
        response = self.live.post("bind", GPU_BIND)
        assert response.status_code == 200, "a failed bind is an Error in a 200, as kube-scheduler expects"
        self.said.append(response.text)
        error: str = response.json()["Error"]
        return error

    def logged(self, text: str) -> Callable[[], bool]:
        return lambda: text in self.live.output()


def watch_fails(api: FakeApiServer, talk: Transcript, status: int, logged: str, **fault: object) -> None:
    """Make the node watch's next requests fail with ``status`` until the log says ``logged``."""
    api.fail_next("GET", "/api/v1/nodes", status, times=100_000, **fault)  # type: ignore[arg-type]
    api.end_watches()
    eventually(talk.logged(logged))
    talk.probes()
    api.clear_faults()


def assert_never_said(secrets: list[str], live: Server, talk: Transcript) -> None:
    output = live.output()
    for secret in secrets:
        assert secret not in output, "a credential in the log"
        for text in talk.said:
            assert secret not in text, f"a credential in a reply: {text[:200]}"
    assert "Authorization" not in output and "Bearer" not in output
    assert "Traceback" not in output


def test_a_bearer_token_never_appears(tmp_path: Path) -> None:
    token = f"sekret-{uuid.uuid4().hex}"
    with FakeApiServer(token=token) as api:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, {"token": token})
        args = ("--log-level", "debug", "--bind-timeout", "1", "--cache-stale-seconds", "1")
        with live_extender(tmp_path, kubeconfig, POLICY, *args) as live:
            talk = Transcript(live)
            eventually(live.ready)
            talk.probes()

            # The bind verb, class by class.
            api.fail_next("POST", BINDING, 403, body=RBAC_DENIAL)
            assert talk.bind() == (
                f"{WHERE}: forbidden (403), the extender needs create on pods/binding: "
                f"{RBAC_DENIAL['message']}"
            )
            api.fail_next("POST", BINDING, 429, retry_after=30, body=TOO_MANY_REQUESTS_TEXT)
            assert talk.bind() == f"{WHERE}: throttled by the API server (429 Too Many Requests, retry after 30s)"
            api.fail_next("POST", BINDING, 500, times=1000)
            assert talk.bind() == (
                f"{WHERE}: the API server failed (500): Internal error occurred: injected by the fake apiserver"
            )
            api.clear_faults()
            api.delay_next(BINDING, 60.0, times=100)
            assert talk.bind() == (
                f"{WHERE}: no answer from the API server within the bind timeout (1s); it may still bind"
            )
            api.clear_delays()  # the late POST binds the pod; kube-scheduler's retry finds it there
            eventually(lambda: api.pods[("default", "gpu-1")]["spec"].get("nodeName") == "node-00002")
            assert talk.bind() == ""

            # The node watch: server errors, RBAC, credentials.
            watch_fails(api, talk, 500, "nodes: GET /api/v1/nodes: 500 Internal error occurred")
            watch_fails(api, talk, 403, "nodes: forbidden by RBAC", body=WATCH_DENIED)
            api.token = "revoked"
            api.end_watches()
            eventually(talk.logged("nodes: the API server rejected the extender's credentials"))
            assert talk.bind() == f"{WHERE}: the API server rejected the extender's credentials (401 Unauthorized)"
            eventually(lambda: not live.ready())
            talk.probes()
            api.token = token
            eventually(live.ready, timeout=60)

            # And no API server at all.
            url = api.url
            api.stop()
            eventually(talk.logged("connection refused"))
            assert talk.bind() == (
                f"{WHERE}: the API server is unreachable (cannot reach {url}: connection refused)"
            )
            eventually(lambda: not live.ready())
            talk.probes()
            assert "connection refused" in talk.said[-1], "/readyz says why"
    assert_never_said([token], live, talk)


def test_a_client_key_never_appears(tmp_path: Path, tls: TlsFiles) -> None:
    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    user = {"client-certificate-data": data(tls.client_cert), "client-key-data": data(tls.client_key)}
    key_lines = [line for line in tls.client_key.read_text().splitlines() if line and not line.startswith("-----")]
    with FakeApiServer(tls=tls, require_client_cert=True, token=None) as api:
        kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig", api.url, user, **{"certificate-authority-data": data(tls.ca_cert)}
        )
        args = ("--log-level", "debug", "--bind-timeout", "1", "--cache-stale-seconds", "1")
        with live_extender(tmp_path, kubeconfig, POLICY, *args) as live:
            talk = Transcript(live)
            eventually(live.ready)
            assert api.requests[-1].client_cert_cn == "extender", "authenticated by the client certificate"
            api.fail_next("POST", BINDING, 403, body=RBAC_DENIAL)
            assert talk.bind().startswith(f"{WHERE}: forbidden (403)")
            watch_fails(api, talk, 500, "nodes: GET /api/v1/nodes: 500 Internal error occurred")
            watch_fails(api, talk, 401, "nodes: the API server rejected the extender's credentials")
            api.stop()
            eventually(talk.logged("connection refused"))
            assert "the API server is unreachable" in talk.bind()
            eventually(lambda: not live.ready())
            talk.probes()
    assert_never_said([user["client-key-data"], *key_lines], live, talk)


def test_a_server_url_with_credentials_is_refused_without_repeating_them(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "https://admin:hunter2@127.0.0.1:6443")
    result = subprocess.run(
        [sys.executable, "-m", "extender", "serve", "--node-cache", "--kubeconfig", str(kubeconfig)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "the server URL carries credentials (user:password@host)" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
