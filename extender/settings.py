"""Service settings: defaults, overridden by ``EXTENDER_*`` environment variables, then by flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

#: 5000 nodes of ~14 KiB each (percentageOfNodesToScore: 100) is ~73 MB; leave headroom.
DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024


def _parse(name: str, raw: str, kind: str) -> Any:
    """An environment value as the field's type (annotations are strings here)."""
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: must be an integer") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r}: must be a number") from None
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}={raw!r}: must be true or false")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything ``extender serve`` can be told. Field ``x_y`` <- env ``EXTENDER_X_Y`` <- ``--x-y``."""

    host: str = "127.0.0.1"
    port: int = 8888
    #: gunicorn worker processes; 0: 1 with a node or pod cache (one set of watches and one
    #: 150k-pod list per replica, not per worker: README "Caches at scale"), else 2
    workers: int = 0
    threads: int = 4
    #: policy file; None serves the embedded default policy
    policy: str | None = None
    url_prefix: str = "/scheduler"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: names mode: a node name the extender does not know is "fail"ed or "pass"ed
    unknown_nodes: str = "fail"
    log_level: str = "info"
    #: watch nodes (needed for nodeCacheCapable: true, and lets preempt check candidates)
    node_cache: bool = False
    #: watch bound pods (for rules that account for what runs where)
    pod_cache: bool = False
    #: kubeconfig for running outside a cluster; None: in-cluster, else $KUBECONFIG / ~/.kube/config
    kubeconfig: str | None = None
    kube_context: str | None = None
    #: seconds a bind may take, retries included (kube-scheduler's httpTimeout is 5 s by default)
    bind_timeout: float = 3.0
    #: seconds between full relists of the caches (watches resume in between)
    resync_seconds: float = 1800.0
    #: seconds of binds kept for in-flight accounting; must cover the longest maxAge of a
    #: load rule plus the metrics' lag (extender.kube.binds)
    inflight_retention_seconds: float = 900.0
    #: seconds a request may take to arrive whole, from its first byte (from the accept, TLS
    #: handshake included, for a new connection); well under kube-scheduler's 5 s httpTimeout
    read_timeout: float = 2.0
    #: seconds a client may take to read a response (a thread waits on it meanwhile)
    write_timeout: float = 10.0
    #: connections per worker process; the oldest idle keep-alive one makes room for a new one
    max_connections: int = 1000
    #: bytes of requests received but not yet answered, per worker process; 0: 2 x max body
    max_held_bytes: int = 0
    #: TLS: server certificate chain and key (PEM); both or neither
    tls_cert: str | None = None
    tls_key: str | None = None
    #: mTLS: CA that client certificates must chain to (kube-scheduler's tlsConfig.certFile)
    tls_client_ca: str | None = None
    #: a plain-HTTP port serving only GET /healthz and /readyz (kubelet probes present no
    #: client certificate, so with mTLS they cannot use the main port); 0: none
    probe_port: int = 0
    #: the address the probe port binds; None: ``host``. A sidecar on loopback (the chart's
    #: secondScheduler layout) sets 0.0.0.0 so Prometheus can scrape /metrics there while
    #: the verbs stay on 127.0.0.1 (the probe port answers nothing but probes and /metrics)
    probe_host: str | None = None
    #: preempt: a candidate the extender has no Node object of is "drop"ped or "keep"t
    preempt_unknown_nodes: str = "drop"
    #: preempt without --node-cache: nodes seen in full-node requests each worker remembers (LRU)
    preempt_seen_nodes: int = 5000
    #: preempt: GET unknown candidates from the API server (needs API access, RBAC get on nodes)
    preempt_node_lookup: bool = False
    #: seconds one preempt call may spend on that lookup, all candidates together
    preempt_lookup_timeout: float = 1.0

    #: seconds a synced cache may be without the API server before /readyz says 503. 60: twice
    #: the reconnect backoff's cap (30 s), so retries after a dropped watch or during an HA API
    #: server's rolling restart never flap readiness; about kube-controller-manager's
    #: node-monitor-grace-period (40-50 s), after which the control plane itself stops trusting
    #: a silent node, so a replica cut off for longer is taken out while healthy ones serve.
    cache_stale_seconds: float = 60.0

    # -- decision records (README "Explaining decisions") --
    #: one JSON line per verb call on logger extender.decisions: off, summary, or detail (adds
    #: the nodes x rules table, which evaluates every rule on every node again)
    decision_log: str = "summary"
    #: fraction (0..1) of calls whose line is written; calls with rule failures or an error
    #: answer always are, and observers (metrics, status) get every record
    decision_sample: float = 1.0
    #: node names a record lists per list, and table rows (exact counts are kept); 0: no bound
    decision_max_nodes: int = 20
    # -- metrics (area: metrics) --
    #: directory for files the workers share (``<dir>/metrics``: Prometheus multiprocess
    #: files, emptied at start); None: a fresh private one (under /dev/shm), removed at exit
    runtime_dir: str | None = None
    # -- policy hot reload (extender.web.reloading) --
    #: seconds between checks of the policy file for new content (each worker); 0: only on
    #: SIGHUP. A ConfigMap update reaches the pod's volume within kubelet's sync period (~1 min).
    policy_poll_seconds: float = 2.0
    # -- status page, recent decisions, Kubernetes Events (README "Status page", "Events") --
    #: a plain-HTTP port serving only the read-only status pages (GET /status...); 0: none
    admin_port: int = 0
    #: the address the admin port binds: loopback, reached with kubectl port-forward (the
    #: pages show pod names, and the admin port has no authentication)
    admin_host: str = "127.0.0.1"
    #: decisions each worker keeps for the status page (newest first)
    status_decisions: int = 200
    #: fraction (0..1) of decisions the status page keeps with their nodes x rules table
    #: (each such call evaluates every rule again on the table's rows)
    status_tables: float = 0.1
    #: post an events.k8s.io/v1 Event on each pod summarising the decision (rate-limited)
    events: bool = False

    @property
    def held_bytes_limit(self) -> int:
        """``max_held_bytes``, or twice the body limit when it is 0 (the default)."""
        return self.max_held_bytes or 2 * self.max_body_bytes

    @property
    def normalised_prefix(self) -> str:
        """The URL prefix with one leading slash and no trailing slash ("" for the root)."""
        return normalise_url_prefix(self.url_prefix)

    def with_overrides(self, values: Mapping[str, Any]) -> Settings:
        """A copy with the non-None entries of ``values`` applied."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in values.items() if v is not None and k in known})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by ``EXTENDER_*`` variables; raises ValueError naming a bad one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"EXTENDER_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f"EXTENDER_{f.name.upper()}", raw, str(f.type))
        return cls().with_overrides(values)

    @property
    def served_workers(self) -> int:
        """The worker count gunicorn runs: ``workers``, or the default for these caches."""
        if self.workers:
            return self.workers
        return 1 if self.node_cache or self.pod_cache else 2

    def needs_api(self, bind_enabled: bool, metrics_api: bool = False) -> bool:
        """Whether the extender must talk to the Kubernetes API (``metrics_api``: the policy
        has a metrics-server source)."""
        return (
            self.node_cache or self.pod_cache or bind_enabled or self.preempt_node_lookup or metrics_api or self.events
        )

    def validate(self) -> list[str]:
        """Problems with these settings, as messages naming the setting."""
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port}: must be 1..65535")
        if self.probe_port and (not 0 < self.probe_port < 65536 or self.probe_port == self.port):
            problems.append(f"probe port {self.probe_port}: must be 1..65535 and not the serving port")
        if self.workers < 0:
            problems.append(f"workers {self.workers}: must be at least 1 (or 0 for the default)")
        if self.threads < 1:
            problems.append(f"threads {self.threads}: must be at least 1")
        if self.max_body_bytes < 1024:
            problems.append(f"max body bytes {self.max_body_bytes}: must be at least 1024")
        if self.unknown_nodes not in ("fail", "pass"):
            problems.append(f"unknown nodes {self.unknown_nodes!r}: must be fail or pass")
        if not 0 < self.bind_timeout <= 60:
            problems.append(f"bind timeout {self.bind_timeout}: must be in (0, 60] seconds (keep it under httpTimeout)")
        if self.resync_seconds < 10:
            problems.append(f"resync seconds {self.resync_seconds}: must be at least 10")
        if self.inflight_retention_seconds < 60:
            problems.append(f"in-flight retention seconds {self.inflight_retention_seconds}: must be at least 60")
        if not 0 < self.read_timeout <= 60:
            problems.append(f"read timeout {self.read_timeout}: must be in (0, 60] seconds (keep it under httpTimeout)")
        if not 0 < self.write_timeout <= 300:
            problems.append(f"write timeout {self.write_timeout}: must be in (0, 300] seconds")
        if self.max_connections < self.threads + 1:
            problems.append(f"max connections {self.max_connections}: must be more than threads ({self.threads})")
        if self.max_held_bytes and self.max_held_bytes < self.max_body_bytes:
            problems.append(f"max held bytes {self.max_held_bytes}: must be 0 (auto) or at least max body bytes ({self.max_body_bytes})")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("TLS needs both --tls-cert and --tls-key")
        if self.tls_client_ca and not self.tls_cert:
            problems.append("--tls-client-ca (mTLS) needs --tls-cert and --tls-key")
        for name, path in (("tls cert", self.tls_cert), ("tls key", self.tls_key), ("tls client ca", self.tls_client_ca)):
            if path and not os.path.isfile(path):
                problems.append(f"{name} {path}: no such file")
        if self.preempt_unknown_nodes not in ("keep", "drop"):
            problems.append(f"preempt unknown nodes {self.preempt_unknown_nodes!r}: must be keep or drop")
        if self.preempt_seen_nodes < 0:
            problems.append(f"preempt seen nodes {self.preempt_seen_nodes}: must be 0 (remember none) or more")
        if not 0 < self.preempt_lookup_timeout <= 4:
            problems.append(
                f"preempt lookup timeout {self.preempt_lookup_timeout}: must be in (0, 4] seconds "
                "(kube-scheduler's httpTimeout is 5 s by default)"
            )
        if not self.cache_stale_seconds > 0:
            problems.append(f"cache stale seconds {self.cache_stale_seconds}: must be greater than 0")
        if self.decision_log not in ("off", "summary", "detail"):
            problems.append(f"decision log {self.decision_log!r}: must be off, summary or detail")
        if not 0 <= self.decision_sample <= 1:
            problems.append(f"decision sample {self.decision_sample}: must be in 0..1")
        if self.decision_max_nodes < 0:
            problems.append(f"decision max nodes {self.decision_max_nodes}: must be 0 (no bound) or more")
        if self.policy_poll_seconds < 0:
            problems.append(f"policy poll seconds {self.policy_poll_seconds}: must be 0 (only on SIGHUP) or more")
        problems.extend(self._status_problems())
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            problems.append(f"log level {self.log_level!r}: must be debug, info, warning, error or critical")
        return problems

    def _status_problems(self) -> list[str]:
        problems = []
        if self.admin_port and (not 0 < self.admin_port < 65536 or self.admin_port in (self.port, self.probe_port)):
            problems.append(f"admin port {self.admin_port}: must be 1..65535 and not the serving or probe port")
        if not 1 <= self.status_decisions <= 100_000:
            problems.append(f"status decisions {self.status_decisions}: must be 1..100000")
        if not 0 <= self.status_tables <= 1:
            problems.append(f"status tables {self.status_tables}: must be in 0..1")
        return problems


def normalise_url_prefix(text: str) -> str:
    """A verbs' path prefix with one leading slash and no trailing slash ("" for the root)."""
    prefix = text.strip().strip("/")
    return f"/{prefix}" if prefix else ""
