"""deploy/components/tls: HTTPS with client certificates, probes on a plain port, and a
kube-scheduler config to match; the rendered settings run a real mTLS server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.pki import CertificateAuthority
from tests.test_deploy import (
    DEPLOY,
    env_of,
    mounted_file,
    one,
    render_overlay,
    scheduler_config_problems,
    settings_of,
)
from tests.test_server import free_port

COMPONENT = DEPLOY / "components" / "tls"
TLS_ENV = ("EXTENDER_TLS_CERT", "EXTENDER_TLS_KEY", "EXTENDER_TLS_CLIENT_CA")


@pytest.fixture(scope="module", params=["extender", "node-cache"])
def docs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render_overlay(tmp_path_factory.mktemp("tls"), [DEPLOY / request.param], [COMPONENT])


def extender_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = one(docs, "Deployment", "extender", "extender-system")["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "extender")


def test_the_certificate_files_come_from_the_secret_a_cert_manager_certificate_writes(docs: list[dict[str, Any]]) -> None:
    pod, container = extender_pod(docs)
    env = env_of(container)
    keys = {}
    for name in TLS_ENV:
        volume, key = mounted_file(pod, container, env[name])
        assert volume["secret"]["secretName"] == "extender-tls"
        keys[name] = key
    assert keys == {"EXTENDER_TLS_CERT": "tls.crt", "EXTENDER_TLS_KEY": "tls.key", "EXTENDER_TLS_CLIENT_CA": "ca.crt"}
    secret = next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]
    assert secret["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 65532 == container["securityContext"]["runAsUser"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    others = [m["mountPath"] for m in container["volumeMounts"] if m["name"] != "tls"]
    assert mount["readOnly"] and not any(mount["mountPath"].startswith(o.rstrip("/") + "/") for o in others), (
        "not nested inside another (read-only) volume"
    )


def test_probes_use_the_plain_probe_port_and_the_service_says_https(docs: list[dict[str, Any]]) -> None:
    _, container = extender_pod(docs)
    settings = settings_of(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.probe_port == ports["probes"] and settings.port == ports["http"] != settings.probe_port
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"], get.get("scheme", "HTTP")) == (path, "probes", "HTTP")
    (port,) = one(docs, "Service", "extender", "extender-system")["spec"]["ports"]
    assert (port["appProtocol"], port["targetPort"], port["port"]) == ("https", "http", settings.port)
    problems = settings.validate()
    assert problems and all("no such file" in p for p in problems), "only the Secret's files are missing here"


def test_the_scheduler_config_verifies_the_extender_and_presents_a_client_certificate(docs: list[dict[str, Any]]) -> None:
    config = yaml.safe_load((COMPONENT / "scheduler-config.yaml").read_text())
    assert scheduler_config_problems(config) == []
    (extender,) = config["extenders"]
    service = one(docs, "Service", "extender", "extender-system")
    assert extender["urlPrefix"] == f"https://extender.extender-system.svc:{service['spec']['ports'][0]['port']}/scheduler"
    assert "enableHTTPS" not in extender, "enableHTTPS without a CA turns verification off"
    assert set(extender["tlsConfig"]) == {"caFile", "certFile", "keyFile"}


def test_the_rendered_settings_serve_mtls_with_kubelet_probes_on_the_plain_port(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    pod, container = extender_pod(docs)
    ca = CertificateAuthority(tmp_path / "pki", "cluster-ca")
    server, scheduler = ca.server(), ca.client("kube-scheduler")
    secret = tmp_path / "secret"  # what the kubelet would mount from extender-tls
    secret.mkdir()
    for key, source in (("tls.crt", server.cert), ("tls.key", server.key), ("ca.crt", ca.cert)):
        shutil.copy(source, secret / key)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTENDER_")}
    env.update(env_of(container))
    for name in TLS_ENV:
        env[name] = str(secret / mounted_file(pod, container, env[name])[1])
    port, probe = free_port(), free_port()
    env.update(EXTENDER_PORT=str(port), EXTENDER_PROBE_PORT=str(probe), EXTENDER_HOST="127.0.0.1")
    for name in ("EXTENDER_POLICY", "EXTENDER_NODE_CACHE", "EXTENDER_BIND_TIMEOUT"):
        env.pop(name, None)  # the policy volume and the API are not what this test is about
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "extender", "serve"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{probe}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        cert = (str(scheduler.cert), str(scheduler.key))
        assert requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(ca.cert), cert=cert, timeout=5).ok
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(ca.cert), timeout=5)
    finally:
        process.kill()
        process.wait()
