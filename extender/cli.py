"""``extender serve`` and ``extender validate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from extender import __version__
from extender.policy import PolicyError, load_policy
from extender.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extender", description="Kubernetes scheduler extender")
    parser.add_argument("--version", action="version", version=f"extender {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the extender under gunicorn",
        description="Run the extender. Each flag also reads EXTENDER_<NAME> (e.g. EXTENDER_PORT); flags win.",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; the container image sets 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to bind (default 8888)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (default 2)")
    serve.add_argument("--threads", type=int, help="threads per worker (default 4)")
    serve.add_argument("--policy", metavar="FILE", help="policy file (default: the embedded default policy)")
    serve.add_argument("--url-prefix", help="path the verbs live under (default /scheduler)")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body accepted (default 128 MiB)")
    serve.add_argument(
        "--unknown-nodes", choices=("fail", "pass"), help="names mode: reject (default) or pass unknown node names"
    )
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default info")
    api = serve.add_argument_group("Kubernetes API (node/pod caches, bind)")
    api.add_argument(
        "--node-cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="watch nodes: required for nodeCacheCapable: true (default off)",
    )
    api.add_argument(
        "--pod-cache", action=argparse.BooleanOptionalAction, default=None, help="watch bound pods (default off)"
    )
    api.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config)")
    api.add_argument("--context", dest="kube_context", help="kubeconfig context (default: its current-context)")
    api.add_argument("--bind-timeout", type=float, help="seconds a bind may take, retries included (default 3)")
    api.add_argument("--resync-seconds", type=float, help="seconds between full cache relists (default 1800)")
    api.add_argument(
        "--cache-stale-seconds",
        type=float,
        help="seconds a synced cache may be without the API server before /readyz fails (default 60)",
    )

    validate = sub.add_parser("validate", help="check a policy file and print every problem")
    validate.add_argument("policy", metavar="POLICY", help="policy file to check")
    return parser


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env().with_overrides(vars(args))
    except ValueError as exc:
        print(f"extender: {exc}", file=sys.stderr)
        return 2
    problems = settings.validate()
    if problems:
        for problem in problems:
            print(f"extender: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        policy = load_policy(settings.policy)
    except PolicyError as exc:
        print(f"extender: refusing to start: {exc}", file=sys.stderr)
        return 1
    if settings.needs_api(policy.bind_enabled):
        from extender.kube.config import ConfigError, load_config

        try:
            config = load_config(settings.kubeconfig, settings.kube_context)
        except ConfigError as exc:
            print(f"extender: refusing to start: Kubernetes API access is needed ({_api_uses(settings, policy.bind_enabled)}) but {exc}", file=sys.stderr)
            return 1
        logging.getLogger("extender").info("Kubernetes API at %s (%s)", config.server, config.source)
    from extender.server import ExtenderServer  # gunicorn only when serving

    logging.getLogger("extender").info(
        "extender %s serving policy %s (digest %s) on http://%s:%d%s/{filter,prioritize,preempt,bind}",
        __version__, policy.source, policy.digest, settings.host, settings.port, settings.normalised_prefix,
    )
    ExtenderServer(settings).run()
    return 0


def _api_uses(settings: Settings, bind: bool) -> str:
    uses = [name for name, on in (("--node-cache", settings.node_cache), ("--pod-cache", settings.pod_cache), ("bind", bind)) if on]
    return ", ".join(uses)


def _validate(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(problem)
        return 1
    print(
        f"{policy.source}: valid ({len(policy.predicates)} predicate(s), {len(policy.priorities)} priority(ies), "
        f"bind {'enabled' if policy.bind_enabled else 'disabled'})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _validate(args)
