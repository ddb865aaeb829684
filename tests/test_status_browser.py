"""The status page in a real headless browser (Debian's chromium) against a real ``extender
serve``: recorded kube-scheduler requests go to the verbs port, the decisions they made show
on the admin port's page with their per-rule breakdown, and the admin port serves nothing
else.

Set STATUS_SCREENSHOT=<file.png> to keep the screenshots of the page and of a decision's page
(<file>-detail.png); they are always taken, in the test's temporary directory, and checked to
be PNGs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import requests

from tests.conftest import FIXTURES
from tests.live_server import ROOT, running_server
from tests.test_server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
POLICY = ROOT / "deploy" / "extender" / "policy.yaml"
FULL_NODES = FIXTURES / "kube-scheduler-v1.30" / "full-nodes"


def chromium(tmp: Path, url: str, *extra: str) -> str:
    """What headless Chromium makes of ``url``: the DOM after load (``--dump-dom``), or its
    output with ``--screenshot``."""
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    result = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", *extra, url,
        ],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_status_page_shows_recorded_decisions_in_chromium(tmp_path: Path) -> None:
    admin = free_port()
    with running_server(
        tmp_path, "--policy", str(POLICY), "--admin-port", str(admin), "--runtime-dir", str(tmp_path / "run"),
        "--status-tables", "1",  # every decision keeps its nodes x rules table
    ) as server:
        for path in sorted(FULL_NODES.glob("*-web-1.request.json")):  # filter, then prioritize
            verb = path.name.split("-")[1]
            assert server.post(verb, path.read_bytes()).status_code == 200
        status = f"http://127.0.0.1:{admin}/status"

        dom = chromium(tmp_path, status, "--dump-dom")
        assert "<h1>extender" in dom and "Recent decisions" in dom
        decisions = re.findall(r'<tr class="decision">(.*?)</tr>', dom, re.S)
        assert len(decisions) == 2, dom
        newest, oldest = decisions
        assert "prioritize" in newest and "default/web-1" in newest
        assert "best node-00001 score 10 (newest-nodes 10)" in newest
        assert "filter" in oldest and "4/8 nodes passed; 4 rejected by node-pools (reserved for node pool 'gpu')" in oldest

        # The filter decision's page: its rejections, rule by rule and reason by reason.
        link = re.search(r'href="(/status/decisions/[^"]+)"', oldest)
        assert link is not None
        filter_page = f"http://127.0.0.1:{admin}{link.group(1)}"
        detail = chromium(tmp_path, filter_page, "--dump-dom")
        assert "filter of pod default/web-1" in detail
        rejected = re.search(r'<table id="rejected">(.*?)</table>', detail, re.S)
        assert rejected is not None and "reserved for node pool 'gpu'" in rejected.group(1)
        assert "<td>4</td>" in rejected.group(1)
        # ... and its explain table: every node, every predicate's verdict, the answer.
        table = re.search(r'<table id="table">(.*?)</table>', detail, re.S)
        assert table is not None, detail
        rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
        assert len(rows) == 9 and all(f"node-0000{i}" in table.group(1) for i in range(8))  # header + 8 nodes
        assert all(rule in rows[0] for rule in ("node-condition", "node-maintenance", "node-pools"))
        assert sum("reserved for node pool 'gpu'" in row for row in rows) == 4
        assert sum("passed" in row for row in rows[1:]) == 4
        # ... and the prioritize decision's: each priority's score on the best node.
        link = re.search(r'href="(/status/decisions/[^"]+)"', newest)
        assert link is not None
        detail = chromium(tmp_path, f"http://127.0.0.1:{admin}{link.group(1)}", "--dump-dom")
        best = re.search(r'<table id="best">(.*?)</table>', detail, re.S)
        assert best is not None and "<td>newest-nodes</td><td>10.0</td>" in best.group(1)

        for page, shot in ((status, tmp_path / "status.png"), (filter_page, tmp_path / "status-detail.png")):
            chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("STATUS_SCREENSHOT"):  # the page, and <name>-detail.png: the filter decision's
            target = Path(os.environ["STATUS_SCREENSHOT"])
            shutil.copyfile(tmp_path / "status.png", target)
            shutil.copyfile(tmp_path / "status-detail.png", target.with_name(f"{target.stem}-detail.png"))

        # The admin port serves the status page only; the verbs port does not serve it.
        assert requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=10).status_code == 404
        refused = requests.post(f"http://127.0.0.1:{admin}/scheduler/filter", data=b"{}", timeout=10)
        assert refused.status_code == 404 and refused.json() == {"error": "the admin port serves only GET /status"}
        assert server.get("/status").status_code == 404
        assert requests.post(status, timeout=10).status_code == 405
