"""``extender scheduler-config``: print the KubeSchedulerConfiguration registering this extender.

The verbs follow the policy (:attr:`~extender.engine.Policy.verbs`); the result is checked
against kube-scheduler's own rules (:func:`extender.schedconfig.problems`) before it is
printed. Exit 0 with YAML on stdout, 1 when the policy does not load, 2 with one line per
problem on stderr when kube-scheduler would refuse the result (or the flags cannot be met).
"""

from __future__ import annotations

import argparse
import sys

from extender.policy import PolicyError, load_policy
from extender.schedconfig import KubeVersion, Setup, VersionError, problems, render

PROG = "extender scheduler-config"


def run(args: argparse.Namespace) -> int:
    """Render, check and print; the exit code as the module docstring says."""
    try:
        version = KubeVersion.parse(args.k8s_version)
    except VersionError as exc:
        return _fail([str(exc)])
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"{PROG}: {exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"{PROG}: {problem}", file=sys.stderr)
        return 1
    setup = Setup(
        url=args.url,
        version=version,
        names_mode=args.mode == "names",
        weight=args.weight,
        http_timeout=args.http_timeout,
        ignorable=args.ignorable,
        tls_ca=args.tls_ca,
        tls_insecure=args.tls_insecure,
        tls_server_name=args.tls_server_name,
        client_cert=args.client_cert,
        client_key=args.client_key,
        managed_resources=tuple(args.managed_resource),
        ignored_by_scheduler=args.ignored_by_scheduler,
        scheduler_name=args.scheduler_name,
        leader_elect=args.leader_elect,
        lease_namespace=args.lease_namespace,
        kubeconfig=args.kubeconfig,
        serve_url_prefix=args.url_prefix,
    )
    found = setup.problems()
    if not policy.verbs:
        found.append(f"policy {policy.source}: it has no predicates, priorities or bind: registering it would change nothing")
    if found:
        return _fail(found)
    rendered = render(policy, setup)
    found = problems(rendered.config, version)
    if found:
        return _fail(found)
    sys.stdout.write(rendered.to_yaml())
    return 0


def _fail(found: list[str]) -> int:
    for problem in found:
        print(f"{PROG}: {problem}", file=sys.stderr)
    return 2
