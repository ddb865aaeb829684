"""Shared test helpers: the recorded kube-scheduler traffic and app builders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from extender.engine import Policy
from extender.policy import load_policy_text
from extender.settings import Settings
from extender.web import create_app


#: recorded from a real kube-scheduler and kube-apiserver (see its README); copied into the
#: repository (tests/fixtures/COPIED-FROM.md says from where) so that a fresh clone tests itself
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEDULER_VERSIONS = ("kube-scheduler-v1.24", "kube-scheduler-v1.30")


def scheduler_fixtures(mode: str | None = None) -> list[Path]:
    """Every recorded request body (``*.request.json``), optionally of one mode folder."""
    paths = []
    for version in SCHEDULER_VERSIONS:
        for path in sorted((FIXTURES / version).glob("*/*.request.json")):
            if mode is None or path.parent.name == mode:
                paths.append(path)
    assert paths, f"no fixtures found under {FIXTURES}"
    return paths


def fixture_id(path: Path) -> str:
    return f"{path.parts[-3]}/{path.parent.name}/{path.name.removesuffix('.request.json')}"


def verb_of(path: Path) -> str:
    """``00002-prioritize-web-1.request.json`` -> ``prioritize``."""
    return path.name.split("-")[1]


def request_line(path: Path) -> tuple[str, str]:
    """Method and path from the recorded ``.headers.txt``."""
    first = path.with_name(path.name.replace(".request.json", ".headers.txt")).read_text().splitlines()[0]
    method, target = first.split()[:2]
    return method, target


def fixture(version: str, mode: str, stem: str) -> bytes:
    return (FIXTURES / version / mode / f"{stem}.request.json").read_bytes()


def load_json(data: bytes) -> Any:
    return json.loads(data)


def eventually(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait until ``check()`` is true; fail after ``timeout`` seconds (a hang, not a speed)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def make_app(policy: Policy | str | None = None, settings: Settings | None = None) -> Flask:
    """An app on ``policy`` (YAML text, a Policy, or None for the embedded default)."""
    if isinstance(policy, str):
        policy = load_policy_text(policy)
    return create_app(settings or Settings(), policy=policy)


@pytest.fixture
def client() -> Iterator[FlaskClient]:
    """Test client on the embedded default policy."""
    yield make_app().test_client()
