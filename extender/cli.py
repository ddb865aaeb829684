"""``extender serve``, ``extender validate``, ``extender explain`` (:mod:`extender.explain_cli`) and
``extender scheduler-config`` (:mod:`extender.schedconfig_cli`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

from extender import __version__
from extender.engine import Policy
from extender.policy import PolicyError, load_policy
from extender.schedconfig.render import DEFAULT_SCHEDULER_NAME, Setup
from extender.schedconfig.versions import NEWEST, OLDEST_MINOR
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
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (default 2; 1 with a node or pod cache)")
    serve.add_argument("--threads", type=int, help="threads per worker (default 4)")
    serve.add_argument("--policy", metavar="FILE", help="policy file (default: the embedded default policy)")
    serve.add_argument(
        "--policy-poll-seconds",
        type=float,
        help="seconds between checks of the policy file for changes, reloaded in place (default 2; 0: only on SIGHUP)",
    )
    serve.add_argument("--url-prefix", help="path the verbs live under (default /scheduler)")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body accepted (default 128 MiB)")
    serve.add_argument(
        "--unknown-nodes", choices=("fail", "pass"), help="names mode: reject (default) or pass unknown node names"
    )
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default info")
    clients = serve.add_argument_group("clients (per worker process)")
    clients.add_argument(
        "--read-timeout", type=float, help="seconds a request may take to arrive, from its first byte (default 2)"
    )
    clients.add_argument("--write-timeout", type=float, help="seconds a client may take to read a response (default 10)")
    clients.add_argument("--max-connections", type=int, help="open connections per worker (default 1000)")
    clients.add_argument(
        "--max-held-bytes", type=int, help="bytes of requests in progress per worker (default 2 x --max-body-bytes)"
    )
    tls = serve.add_argument_group("TLS (kube-scheduler: enableHTTPS / tlsConfig)")
    tls.add_argument("--tls-cert", metavar="FILE", help="server certificate chain (PEM); serve HTTPS")
    tls.add_argument("--tls-key", metavar="FILE", help="server private key (PEM)")
    tls.add_argument(
        "--tls-client-ca", metavar="FILE", help="require client certificates signed by this CA (mTLS)"
    )
    tls.add_argument(
        "--probe-port", type=int, help="plain-HTTP port for GET /healthz, /readyz and /metrics only (probes, scrapes under mTLS)"
    )
    tls.add_argument(
        "--probe-host", help="address the probe port binds (default: --host; a sidecar on loopback: 0.0.0.0 for scrapes)"
    )
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
        "--inflight-retention-seconds",
        type=float,
        help="seconds of binds kept for in-flight accounting; must cover maxAge plus metrics lag (default 900)",
    )
    preempt = serve.add_argument_group("preempt (checking kube-scheduler's candidate nodes against the policy)")
    preempt.add_argument(
        "--preempt-unknown-nodes",
        choices=("keep", "drop"),
        help="a candidate the extender has no Node object of: drop it (default) or keep it",
    )
    preempt.add_argument(
        "--preempt-seen-nodes",
        type=int,
        metavar="N",
        help="without --node-cache: nodes seen in filter/prioritize requests each worker remembers (default 5000)",
    )
    preempt.add_argument(
        "--preempt-node-lookup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="GET unknown candidates from the API server (needs RBAC get on nodes; default off)",
    )
    preempt.add_argument(
        "--preempt-lookup-timeout", type=float, help="seconds a preempt call may spend on that lookup (default 1)"
    )
    api.add_argument(
        "--cache-stale-seconds",
        type=float,
        help="seconds a synced cache may be without the API server before /readyz fails (default 60)",
    )
    _status_flags(serve)

    decisions = serve.add_argument_group("decision records (one JSON line per verb call on extender.decisions)")
    decisions.add_argument(
        "--decision-log", choices=("off", "summary", "detail"), help="detail adds the nodes x rules table (default summary)"
    )
    decisions.add_argument(
        "--decision-sample", type=float, metavar="RATE",
        help="fraction 0..1 of calls logged; rule failures and errors always are (default 1)",
    )
    decisions.add_argument(
        "--decision-max-nodes", type=int, metavar="N", help="node names per list and table rows in a record (default 20)"
    )
    # -- metrics (area: metrics) --
    serve.add_argument(
        "--runtime-dir",
        metavar="DIR",
        help="directory for files the workers share, e.g. DIR/metrics (default: a fresh private one under /dev/shm, removed at exit)",
    )

    validate = sub.add_parser("validate", help="check a policy file and print every problem")
    validate.add_argument("policy", metavar="POLICY", help="policy file to check")
    _explain_parser(sub)
    _scheduler_config_parser(sub)
    return parser


def _explain_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``explain`` subcommand's arguments (run by :mod:`extender.explain_cli`, imported only
    then: it imports the service, and ``serve`` must not import prometheus_client before its
    runtime directory is set)."""
    explain = sub.add_parser(
        "explain",
        help="print the policy's decision on a filter/prioritize request as a nodes x rules table",
        description="Explain a filter/prioritize request (kube-scheduler's ExtenderArgs) without a server.",
    )
    explain.add_argument("request", nargs="?", default="-", metavar="REQUEST", help="request body file ('-' or absent: stdin)")
    explain.add_argument("--policy", metavar="FILE", help="policy file (default: the embedded default policy)")
    explain.add_argument(
        "--verb", choices=("filter", "prioritize", "both"),
        help="default: from the file name (a recorded NNNNN-<verb>-<pod>.request.json), else both",
    )
    explain.add_argument(
        "--nodes", metavar="FILE", action="append", default=[],
        help="NodeList JSON (repeatable: list pages), or a full-node request whose Nodes to use, to resolve "
        "NodeNames; without it every name is unknown",
    )
    explain.add_argument("--unknown-nodes", choices=("fail", "pass"), default="fail", help="names mode: as serve's flag")
    explain.add_argument("--json", action="store_true", help="print the decision record(s) as JSON instead")


# -- scheduler-config (issue 10 item 1) --
def _scheduler_config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``scheduler-config`` subcommand's arguments (run by :mod:`extender.schedconfig_cli`)."""
    config = sub.add_parser(
        "scheduler-config",
        help="print the KubeSchedulerConfiguration that registers the extender, with the verbs the policy needs",
        description="Render kube-scheduler's --config file for this extender and check it against kube-scheduler's "
        "rules; exit 2 with one line per problem if it would not start.",
    )
    config.add_argument("--url", required=True, help="urlPrefix: where kube-scheduler reaches the verbs, e.g. "
                        "http://extender.extender-system.svc:8888/scheduler")
    config.add_argument("--url-prefix", metavar="PATH", default=Settings.url_prefix,
                        help="the path extender serve answers under, its --url-prefix: --url must end with it "
                        "(default %(default)s)")
    config.add_argument("--policy", metavar="FILE", help="policy file (default: the embedded default policy)")
    config.add_argument("--k8s-version", default=str(NEWEST), metavar="1.N",
                        help=f"kube-scheduler's release, 1.{OLDEST_MINOR} to {NEWEST}: picks the apiVersion (v1 from "
                        "1.25; default %(default)s)")
    config.add_argument("--mode", choices=("names", "full-nodes"), default="names",
                        help="names (nodeCacheCapable: true, needs serve --node-cache; bindVerb if the policy binds) "
                        "or full-nodes (default names)")
    config.add_argument("--weight", type=int, default=Setup.weight,
                        help="multiplier of the extender's 0..10 scores, > 0 (default %(default)s)")
    config.add_argument("--http-timeout", default=Setup.http_timeout, metavar="DURATION",
                        help="per call, a Go duration (default %(default)s)")
    config.add_argument("--ignorable", action="store_true", help="schedule without the extender when it fails (fail open)")
    tls = config.add_argument_group("TLS (an https:// --url)")
    trust = tls.add_mutually_exclusive_group()
    trust.add_argument("--tls-ca", metavar="FILE", help="CA file on the scheduler's host that verifies the extender")
    trust.add_argument("--tls-insecure", action="store_true", help="do not verify the extender's certificate")
    tls.add_argument("--tls-server-name", metavar="NAME", help="name to verify the certificate against (SNI)")
    tls.add_argument("--client-cert", metavar="FILE", help="client certificate kube-scheduler presents (mTLS)")
    tls.add_argument("--client-key", metavar="FILE", help="its private key")
    config.add_argument("--managed-resource", metavar="NAME", action="append", default=[],
                        help="call the extender only for pods requesting this extended resource (repeatable)")
    config.add_argument("--ignored-by-scheduler", action="store_true",
                        help="managed resources: NodeResourcesFit stops checking them (the extender alone decides)")
    config.add_argument("--scheduler-name", metavar="NAME", default=DEFAULT_SCHEDULER_NAME,
                        help="the profile's schedulerName (default %(default)s)")
    config.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help="leader election (default on; a second scheduler gets its own lease)")
    config.add_argument("--lease-namespace", metavar="NS",
                        help="namespace of a second scheduler's lease (default kube-system)")
    config.add_argument("--kubeconfig", metavar="PATH",
                        help="clientConnection.kubeconfig (e.g. /etc/kubernetes/scheduler.conf; default in-cluster)")


def _status_flags(serve: argparse.ArgumentParser) -> None:
    status = serve.add_argument_group("status page and Kubernetes Events (README \"Status page\", \"Events\")")
    status.add_argument(
        "--admin-port", type=int, help="plain-HTTP port serving only the read-only status page (default 0: off)"
    )
    status.add_argument("--admin-host", help="address the admin port binds (default 127.0.0.1: kubectl port-forward)")
    status.add_argument("--status-decisions", type=int, metavar="N", help="decisions each worker keeps (default 200)")
    status.add_argument(
        "--status-tables", type=float, metavar="RATE",
        help="fraction 0..1 of decisions kept with their nodes x rules table (default 0.1)",
    )
    status.add_argument(
        "--events",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="post a rate-limited Event on each pod summarising the decision (needs RBAC; default off)",
    )


def _quick_log_records() -> None:
    """Log records without what neither LOG_FORMAT nor gunicorn's format shows: the caller's
    frame, the thread and the multiprocessing name (the logging HOWTO's "Optimization"; ~3 us
    of each decision line). The process ID stays: gunicorn's lines show it."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


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
    _quick_log_records()
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    # -- metrics (area: metrics): before anything imports prometheus_client, and before the fork
    from extender.telemetry import runtime

    try:
        runtime_dir = runtime.prepare(settings.runtime_dir)
    except OSError as exc:
        print(f"extender: refusing to start: runtime directory: {exc}", file=sys.stderr)
        return 1
    try:
        return _serve_in(replace(settings, runtime_dir=str(runtime_dir.path)))
    finally:
        runtime_dir.remove()


def _serve_in(settings: Settings) -> int:
    """Serve with ``settings`` (validated, runtime directory prepared) until told to stop."""
    try:
        policy = load_policy(settings.policy)
    except PolicyError as exc:
        print(f"extender: refusing to start: {exc}", file=sys.stderr)
        return 1
    if settings.tls_cert and settings.tls_key:
        from extender.serving.tls import TLSFiles, TLSFilesError, build_context

        try:  # each worker loads them again; a bad file should stop start-up here, clearly
            build_context(TLSFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca))
        except TLSFilesError as exc:
            print(f"extender: refusing to start: TLS: {exc}", file=sys.stderr)
            return 1
    from extender.load.state import uses_metrics_api

    metrics_api = uses_metrics_api(policy)
    if settings.needs_api(policy.bind_enabled, metrics_api):
        from extender.kube.config import ConfigError, load_config

        try:
            config = load_config(settings.kubeconfig, settings.kube_context)
        except ConfigError as exc:
            print(f"extender: refusing to start: Kubernetes API access is needed ({_api_uses(settings, policy.bind_enabled, metrics_api)}) but {exc}", file=sys.stderr)
            return 1
        logging.getLogger("extender").info("Kubernetes API at %s (%s)", config.server, config.source)
    _warn_if_preempt_guesses(settings, policy)
    from extender.server import ExtenderServer  # gunicorn only when serving

    scheme = "https" if settings.tls_cert else "http"
    logging.getLogger("extender").info(
        "extender %s serving policy %s (digest %s) on %s://%s:%d%s/{filter,prioritize,preempt,bind}%s",
        __version__, policy.source, policy.digest, scheme, settings.host, settings.port, settings.normalised_prefix,
        " (client certificates required)" if settings.tls_client_ca else "",
    )
    logging.getLogger("extender").info("runtime directory %s (the workers' metrics/ and decisions/)", settings.runtime_dir)
    if settings.admin_port:
        logging.getLogger("extender").info(
            "status page on http://%s:%d/status (decisions kept under %s)", settings.admin_host, settings.admin_port,
            settings.runtime_dir,
        )
    ExtenderServer(settings, policy).run()
    return 0


def _api_uses(settings: Settings, bind: bool, metrics_api: bool = False) -> str:
    uses = [name for name, on in (("--node-cache", settings.node_cache), ("--pod-cache", settings.pod_cache), ("bind", bind)) if on]
    if settings.preempt_node_lookup:
        uses.append("--preempt-node-lookup")
    if metrics_api:
        uses.append("a metrics-server source")
    return ", ".join(uses)


def _warn_if_preempt_guesses(settings: Settings, policy: Policy) -> None:
    """Once, in the master process: every worker would otherwise repeat it."""
    from extender.kube.candidates import startup_warning

    warning = startup_warning(
        policy,
        node_cache=settings.node_cache,
        node_lookup=settings.preempt_node_lookup,
        seen_nodes=settings.preempt_seen_nodes,
        unknown="keep" if settings.preempt_unknown_nodes == "keep" else "drop",
    )
    if warning:
        logging.getLogger("extender").warning(warning)


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
    print(_verbs_hint(policy))
    return 0


def _verbs_hint(policy: Policy) -> str:
    """Which verbs to register: every verb kube-scheduler is given costs a call per pod."""
    verbs = policy.verbs
    if not verbs:
        return "register no verbs: this policy has no predicates, priorities or bind (the extender would change nothing)"
    left_out = [key for key in ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb") if key not in verbs]
    line = "register in the KubeSchedulerConfiguration: " + ", ".join(f"{k}: {v}" for k, v in verbs.items())
    if "prioritizeVerb" in left_out and "filterVerb" in verbs:
        line += " (no prioritizeVerb: the policy has no priorities, so each pod costs one call instead of two)"
    elif "filterVerb" in left_out and "prioritizeVerb" in verbs:
        line += " (no filterVerb or preemptVerb: the policy has no predicates, so each pod costs one call instead of two)"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "explain":
        from extender import explain_cli

        return explain_cli.run(args)
    if args.command == "scheduler-config":
        from extender import schedconfig_cli

        return schedconfig_cli.run(args)
    return _validate(args)
