"""Benchmark-only: ``extender serve`` with its verb path swapped for an alternative that was
tried and not shipped, so :mod:`benchmarks.fast_path_alternatives` can measure them side by
side. ``python -m benchmarks.variant_serve serve ...`` with ``BENCH_VARIANT`` one of:

- ``flask``: no fast path; every request through gunicorn's parser, WSGI and the Flask routes
  (the verbs answered by the same :class:`~extender.web.verbs.VerbEndpoint`);
- ``thin-wsgi``: no fast path; a WSGI function in front of Flask answers the verb paths from
  the environ (gunicorn's parser, environ and response writing, a thread, but no Flask);
- ``threads``: the fast path, every call answered by a thread (none in the event loop);
- ``inline``: what ships (the fast path; filter, prioritize and probes in the event loop).

The shipped code is untouched: the shipped ``post_worker_init`` runs first, then the variant
is applied to the worker before it serves anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from extender import cli, gunicorn_conf
from extender.serving import fastpath
from extender.web.verbs import VerbEndpoint

VARIANTS = ("flask", "thin-wsgi", "threads", "inline")
_shipped_post_worker_init = gunicorn_conf.post_worker_init


def thin_wsgi(app: Any) -> None:
    """Answer the verb paths from the WSGI environ, in front of Flask (the issue's "thin WSGI
    path inside the Flask app")."""
    endpoint: VerbEndpoint = app.extensions["extender.verbs"]
    paths, flask_wsgi = endpoint.paths, app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        verb = paths.get(environ["PATH_INFO"]) if environ["REQUEST_METHOD"] == "POST" and not environ.get("QUERY_STRING") else None
        if verb is None:
            return flask_wsgi(environ, start_response)  # type: ignore[no-any-return]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        status, answer = endpoint.answer(verb, environ.get("CONTENT_TYPE"), body)
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]

    app.wsgi_app = wsgi


def post_worker_init(worker: Any) -> None:
    """The shipped hook, then the variant."""
    _shipped_post_worker_init(worker)
    variant = os.environ["BENCH_VARIANT"]
    if variant in ("flask", "thin-wsgi"):
        worker.fast = None
    if variant == "thin-wsgi":
        thin_wsgi(worker.wsgi)
    if variant == "threads":
        fastpath.INLINE = frozenset()


def main(argv: list[str]) -> int:
    if os.environ.get("BENCH_VARIANT") not in VARIANTS:
        raise SystemExit(f"BENCH_VARIANT must be one of {', '.join(VARIANTS)}")
    gunicorn_conf.SETTINGS["post_worker_init"] = post_worker_init
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
