"""A metric source over the Prometheus HTTP API: one instant query per metric, all nodes at once.

Each key is resolved through the source's ``queries`` (name -> PromQL), else it is PromQL
itself, and sent as one ``POST /api/v1/query`` (form-encoded, so long expressions fit) with
Prometheus' own ``timeout`` set to what is left of the fetch. Every series of the answer is
mapped to a node by ``nodeLabel``: its value is the node's name, or (``nodeLabelValue:
address``) an ``instance``-style address -- ``10.0.0.5:9100``, ``[fd00::1]:9100``,
``host:9100`` or without a port -- matched against the nodes' ``status.addresses``
(InternalIP, ExternalIP, Hostname) and names, through an index built once per fetch.

**Sample time.** An instant query stamps every sample with the evaluation time, which hides
how old the data is: Prometheus answers with the last sample up to 5 minutes back (its
lookback delta), so a recording rule that stopped being evaluated, or a node-exporter whose
samples arrive with old timestamps, still looks fresh for 5 minutes whatever ``maxAge``
says. With ``sampleTime: sample`` (the default) the one query per key is
``label_replace(timestamp(EXPR), "__extender_sample_time__", "1", "", "") or (EXPR)``:
``timestamp()`` of a plain selector -- a recorded series, which is what the shipped recording
rules give -- is the time of the sample itself, so ``maxAge`` compares with the data's real
age. Measured on Prometheus 2.42 (tests/load/test_prometheus.py): while data flows it is up
to one scrape or evaluation interval before the query's time; for a series last stamped a
minute ago, the instant query alone says "now" and ``timestamp()`` says a minute ago.
For a computed expression ``timestamp()`` is the evaluation time, no worse than without it.
The price: the expression is evaluated twice, so point keys at recorded series (cheap to
select). ``sampleTime: evaluation`` sends the expression alone.

**Failures.** Unreachable, timed out (``timeout`` bounds the whole fetch of all keys, see
:class:`~extender.load.httpclient.Deadline`): :class:`SourceError` at once. A key whose
query fails alone (bad PromQL, a result that is not an instant vector) is left out and its
reason kept in :attr:`partial_errors`; when every key fails with a server-side problem (HTTP
errors, an answer that is not the Prometheus API) the fetch raises with the first reason.

**Several series for one node** (e.g. ``node_load1`` from two node-exporters, or a query
that forgot to aggregate): that node is left out of that key -- no series is more right
than another -- and the key's :attr:`warnings` name it and the fix, ``max by (node) (...)``.
Series without a mappable node are counted in :attr:`warnings` too; the other nodes stay.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import requests

from extender.engine.model import SourceSpec
from extender.load.httpclient import Deadline, SecretError, SecretFile, session
from extender.load.source import MetricSource, NodeLister, Samples, SourceError
from extender.measured import Sample
from extender.view import NodeView

SAMPLE_TIME_LABEL = "__extender_sample_time__"
#: an answer larger than this is not one a node metric gives (5000 nodes take about 1 MiB)
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: errorTypes that are the expression's own fault (other keys may well work)
KEY_ERRORS = frozenset({"bad_data", "execution"})


class _Answer(msgspec.Struct):
    status: str
    data: msgspec.Raw = msgspec.Raw(b"null")
    errorType: str = ""
    error: str = ""
    warnings: list[str] = []


class _Data(msgspec.Struct):
    resultType: str
    result: msgspec.Raw


class _Series(msgspec.Struct):
    metric: dict[str, str]
    value: tuple[float, str]


_decode_answer = msgspec.json.Decoder(_Answer).decode
_decode_data = msgspec.json.Decoder(_Data).decode
_decode_vector = msgspec.json.Decoder(list[_Series]).decode


class _KeyFailure(Exception):
    """One key's query failed; ``server`` when the server, not the expression, is at fault."""

    def __init__(self, reason: str, *, server: bool) -> None:
        super().__init__(reason)
        self.server = server


@lru_cache(maxsize=65536)  # parsing IPs is most of a 5000-node fetch; the same ones come back each time
def host_of(address: str) -> str:
    """The host part of an ``instance``-style address, IPs in canonical form:
    ``10.0.0.5:9100`` -> ``10.0.0.5``, ``[fd00::1]:9100`` -> ``fd00::1``, ``Node-A:9100`` -> ``node-a``."""
    text = address.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower().rstrip(".")


def address_index(nodes: Iterable[NodeView]) -> dict[str, str | None]:
    """Host (see :func:`host_of`) -> node name, from every node's addresses and name; a host
    two nodes share maps to None (it names neither)."""
    index: dict[str, str | None] = {}
    for node in nodes:
        hosts = {host_of(a.address) for a in node.addresses if a.address} | {host_of(node.name)}
        for host in hosts:
            index[host] = node.name if index.get(host, node.name) == node.name else None
    return index


class PrometheusSource(MetricSource):
    """Node metrics from Prometheus; ``spec.options`` as :mod:`extender.policy.sources.prometheus`
    loads them."""

    def __init__(self, spec: SourceSpec, nodes: NodeLister) -> None:
        super().__init__(spec, nodes)
        options = spec.options
        parts = urlsplit(options["url"])
        #: where errors say we asked (without any user:password@ of the URL)
        self.where = urlunsplit((parts.scheme, parts.hostname or "", "", "", "")) + (
            f":{parts.port}" if parts.port else ""
        ) + parts.path.rstrip("/")
        self._query_url = options["url"].rstrip("/") + "/api/v1/query"
        self._queries: Mapping[str, str] = options.get("queries", {})
        self._node_label: str = options.get("node_label", "node")
        self._by_address = options.get("node_label_value", "name") == "address"
        self._sample_time = options.get("sample_time", "sample") == "sample"
        tls: Mapping[str, Any] = options.get("tls") or {}
        self._verify: bool | str = False if tls.get("insecure_skip_verify") else tls.get("ca_file", True)
        self._cert = (tls["cert_file"], tls["key_file"]) if "cert_file" in tls else None
        #: checked at each fetch, for a message naming the file (requests' would not say which option)
        self._tls_files = [(f"tls {name}", tls[key]) for key, name in _TLS_FILES if key in tls]
        basic = options.get("basic_auth")
        self._username: str | None = basic["username"] if basic else None
        self._password = SecretFile(basic["password_file"], "basicAuth passwordFile") if basic else None
        token_file = options.get("bearer_token_file")
        self._token = SecretFile(token_file, "bearerTokenFile") if token_file else None
        self._headers = {"Accept": "application/json", **options.get("headers", {})}
        self._http = session(tls.get("server_name"))
        #: per key returned, what was left out of it (series without a node, duplicates, Prometheus' warnings)
        self.warnings = {}

    def fetch(self, keys: Collection[str]) -> Samples:
        self.partial_errors = {}
        self.warnings = {}
        if not keys:
            return {}
        try:
            auth = (self._username or "", self._password.read()) if self._password else None
            headers = dict(self._headers)
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token.read()}"
            for what, path in self._tls_files:
                _readable(path, what)
        except SecretError as exc:
            raise SourceError(f"prometheus {self.where}: {exc}") from None
        try:
            index = address_index(self.nodes()) if self._by_address else None
        except Exception as exc:  # the node cache's problem, but a fetch raises only SourceError
            raise SourceError(f"prometheus {self.where}: cannot list nodes to map addresses: {exc}") from exc
        samples: dict[str, dict[str, Sample]] = {}
        server_failures: list[str] = []
        with Deadline(self.spec.timeout) as deadline:
            for key in sorted(keys):
                try:
                    series, warnings = self._query(self._queries.get(key, key), deadline, auth, headers)
                    samples[key] = self._by_node(key, series, index)
                    if warnings:  # e.g. PromQL info about a counter without _total
                        self.warnings.setdefault(key, []).extend(f"prometheus: {w}" for w in warnings)
                except _KeyFailure as failure:
                    self.partial_errors[key] = str(failure)
                    if failure.server:
                        server_failures.append(str(failure))
        if not samples and len(server_failures) == len(keys):
            raise SourceError(f"prometheus {self.where}: {server_failures[0]}")
        return samples

    def close(self) -> None:
        self._http.close()

    def _query(
        self, expression: str, deadline: Deadline, auth: tuple[str, str] | None, headers: Mapping[str, str]
    ) -> tuple[list[_Series], list[str]]:
        query = expression
        if self._sample_time:
            query = f'label_replace(timestamp({expression}), "{SAMPLE_TIME_LABEL}", "1", "", "") or ({expression})'
        remaining = deadline.remaining()
        try:
            with self._http.post(
                self._query_url,
                data={"query": query, "timeout": f"{remaining:.3f}"},
                headers=headers,
                auth=auth,
                verify=self._verify,
                cert=self._cert,
                timeout=(remaining, remaining),
                stream=True,
                allow_redirects=False,  # the API does not redirect; a proxy's login page might, credentials and all
            ) as response:
                body = _read(response)
        except requests.RequestException as exc:
            reason = f"timed out after {deadline.seconds:g}s" if deadline.expired else _transport_reason(exc, deadline)
            raise SourceError(f"prometheus {self.where}: {reason}") from None
        except OSError as exc:  # requests' own check of the TLS files, should one vanish since ours
            raise SourceError(f"prometheus {self.where}: {exc}") from None
        return _parse(response, body, wrapped=self._sample_time)

    def _by_node(self, key: str, series: list[_Series], index: Mapping[str, str | None] | None) -> dict[str, Sample]:
        sample_times: dict[frozenset[tuple[str, str]], float] = {}
        values: list[tuple[frozenset[tuple[str, str]], _Series]] = []
        for one in series:
            labels = one.metric
            if labels.get(SAMPLE_TIME_LABEL) == "1":
                identity = frozenset((k, v) for k, v in labels.items() if k != SAMPLE_TIME_LABEL)
                sample_times[identity] = _number(one.value[1])
            else:
                values.append((frozenset((k, v) for k, v in labels.items() if k != "__name__"), one))
        by_node: dict[str, Sample] = {}
        counts: dict[str, int] = {}
        unmapped: list[Mapping[str, str]] = []
        for identity, one in values:
            node = self._node_of(one.metric, index)
            if node is None:
                unmapped.append(one.metric)
                continue
            counts[node] = counts.get(node, 0) + 1
            at = sample_times.get(identity, one.value[0])
            by_node[node] = Sample(_number(one.value[1]), at if math.isfinite(at) else one.value[0])
        notes = self.warnings.setdefault(key, [])
        if not series:
            notes.append("the query gives no series (a misspelt name? recording rules not loaded?)")
        several = sorted(node for node, count in counts.items() if count > 1)
        for node in several:
            del by_node[node]
        if several:
            notes.append(
                f"{len(several)} node(s) have several series, left out: {', '.join(several[:5])}"
                f"{' ...' if len(several) > 5 else ''}; aggregate to one per node, e.g. "
                f"max by ({self._node_label}) (...)"
            )
        if unmapped:
            notes.append(f"{len(unmapped)} series map to no node, e.g. {_labels(unmapped[0])}: {self._unmapped_hint()}")
        if not notes:
            del self.warnings[key]
        return by_node

    def _node_of(self, labels: Mapping[str, str], index: Mapping[str, str | None] | None) -> str | None:
        value = labels.get(self._node_label)
        if not value:
            return None
        if index is None:
            return value
        return index.get(host_of(value))

    def _unmapped_hint(self) -> str:
        if self._by_address:
            return f"no {self._node_label} label, or its address is no known node's (or two nodes')"
        return f"no {self._node_label} label (set nodeLabel, or aggregate by ({self._node_label}))"


_TLS_FILES = (("ca_file", "caFile"), ("cert_file", "certFile"), ("key_file", "keyFile"))


def _readable(path: str, what: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SecretError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _read(response: requests.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(65536):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _KeyFailure(f"answer larger than {MAX_ANSWER_BYTES // 2**20} MiB", server=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(response: requests.Response, body: bytes, *, wrapped: bool) -> tuple[list[_Series], list[str]]:
    """The series and warnings of an API answer, or a :class:`_KeyFailure` saying what it was instead."""
    content_type = response.headers.get("Content-Type", "no content type").split(";")[0]
    status = response.status_code
    try:
        answer = _decode_answer(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        answer = None
    if answer is None or answer.status not in ("success", "error"):
        gist = " ".join(body[:120].decode("utf-8", "replace").split())
        if 300 <= status < 400:
            where = response.headers.get("Location", "nowhere")
            raise _KeyFailure(f"HTTP {status}: redirected to {where} (is url the API's base?)", server=True)
        if status >= 400:
            raise _KeyFailure(f"HTTP {status}: {gist or response.reason}", server=True)
        raise _KeyFailure(f"not a Prometheus API answer ({content_type}, HTTP {status}): {gist!r}", server=True)
    if answer.status == "error":
        note = " (the query was wrapped in timestamp() for sampleTime: sample)" if wrapped else ""
        reason = f"HTTP {status} {answer.errorType}: {answer.error}{note}"
        raise _KeyFailure(reason, server=answer.errorType not in KEY_ERRORS)
    try:
        data = _decode_data(answer.data)
        if data.resultType != "vector":
            raise _KeyFailure(
                f"the query gives a {data.resultType}, not an instant vector with a series per node", server=False
            )
        return _decode_vector(data.result), answer.warnings
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _KeyFailure(f"not a Prometheus API answer (HTTP {status}): {exc}", server=True) from None


def _number(text: str) -> float:
    try:
        return float(text)  # Prometheus writes NaN, +Inf, -Inf, which float() reads
    except ValueError:
        return math.nan


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _transport_reason(exc: requests.RequestException, deadline: Deadline) -> str:
    """An operator's one-liner for a request that got no answer."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, TimeoutError) or isinstance(error, requests.Timeout):
            return f"timed out after {deadline.seconds:g}s"
        if isinstance(error, socket.gaierror):  # DNS: a wrong Service name or namespace, usually
            return f"the host name does not resolve ({error.strerror or error})"
        if isinstance(error, ConnectionResetError):  # e.g. the server exited mid-request
            return "connection reset by the server"
        if isinstance(error, requests.exceptions.SSLError):
            return f"TLS: {_innermost(error)}"
        nested = getattr(error, "reason", None)
        # urllib3 wraps the socket error in args: ('Connection aborted.', ConnectionResetError(...))
        in_args = [a for a in error.args if isinstance(a, BaseException)] + [
            b for a in error.args if isinstance(a, tuple) for b in a if isinstance(b, BaseException)
        ]
        if isinstance(nested, BaseException):
            error = nested
        elif in_args:
            error = in_args[0]
        else:
            error = error.__context__ or error.__cause__
    return f"{type(exc).__name__}: {_innermost(exc)}"


def _innermost(exc: BaseException) -> str:
    while True:
        nested = getattr(exc, "reason", None) or (exc.args[0] if exc.args else None)
        if not isinstance(nested, BaseException):
            return str(exc)
        exc = nested
