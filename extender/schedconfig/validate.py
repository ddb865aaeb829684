"""What kube-scheduler would refuse in a ``KubeSchedulerConfiguration``, as one line per problem.

Two stages fail its start-up (protocol.md §3): strict, case-sensitive decoding (an unknown
key such as ``enableHttps``, or a value of the wrong type), then
``ValidateKubeSchedulerConfiguration`` (pkg/scheduler/apis/config/validation). This checks
the decoding of every key an extender setup uses and the validation rules that concern
extenders and profiles: weight > 0 with prioritizeVerb, at most one binder, managed
resources that are unique extended resource names, percentages and backoffs in range,
named and unique profiles. It also refuses what starts but cannot work: a urlPrefix that
is no http(s) URL, a negative httpTimeout, and insecure TLS with a CA (which fails when the
extenders are built). Plugin sets and plugin args are not checked.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from extender.schedconfig.versions import (
    CLIENT_CONNECTION_KEYS,
    EXTENDER_KEYS,
    GROUP,
    LEADER_ELECTION_KEYS,
    MANAGED_RESOURCE_KEYS,
    NEWEST,
    TLS_CONFIG_KEYS,
    KubeVersion,
    accepted_api_versions,
    newest_accepting,
    profile_keys,
    top_level_keys,
)

# time.ParseDuration: "0", or one or more <number><unit>, optionally signed.
GO_DURATION = re.compile(r"^[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
# k8s.io/apimachinery/pkg/util/validation: IsDNS1123Subdomain and IsQualifiedName's name part.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_STRING_FIELDS = ("urlPrefix", "filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb")
_BOOL_FIELDS = ("enableHTTPS", "nodeCacheCapable", "ignorable")


def problems(config: Any, version: KubeVersion | None = None) -> list[str]:
    """Every reason kube-scheduler ``version`` would not start with ``config`` (or would start
    with an extender that cannot answer); empty when it would. Without ``version``: the
    newest supported release that accepts the config's apiVersion."""
    if not isinstance(config, Mapping):
        return ["(top level): not a mapping"]
    found: list[str] = []
    api_version = config.get("apiVersion")
    if version is None:
        version = newest_accepting(api_version) if isinstance(api_version, str) else None
    if version is None:
        found.append(f"apiVersion: {api_version!r} is not a {GROUP} version any supported kube-scheduler accepts")
        version = NEWEST
    elif api_version not in accepted_api_versions(version):
        accepted = " or ".join(a.rsplit("/", 1)[1] for a in accepted_api_versions(version))
        found.append(f"apiVersion: kube-scheduler {version} accepts {GROUP}/{accepted}, not {api_version!r}")
    if config.get("kind") != "KubeSchedulerConfiguration":
        found.append(f"kind: must be KubeSchedulerConfiguration, not {config.get('kind')!r}")
    api = api_version if isinstance(api_version, str) else f"{GROUP}/v1"
    found += _unknown("(top level)", config, top_level_keys(api, version))
    found += _top_level_values(config)
    found += _profiles(config.get("profiles"), profile_keys(api, version))
    found += _extenders(config.get("extenders"))
    return found


def extended_resource_name_problem(name: Any) -> str | None:
    """validateExtendedResourceName: IsQualifiedName, then IsExtendedResourceName (a domain
    prefix, not ``*kubernetes.io/``, not ``requests.*``, still a qualified name behind
    ``requests.``); None when ``name`` passes."""
    if not isinstance(name, str):
        return f"{name!r} is not a string"
    problem = _qualified_name_problem(name)
    if problem:
        return f"{name!r} is not a qualified name: {problem}"
    if "/" not in name or "kubernetes.io/" in name:
        return f"{name!r} is an invalid extended resource name: it needs a domain prefix such as example.com/{name.rsplit('/', 1)[-1]} (and not *kubernetes.io/)"
    if name.startswith("requests.") or _qualified_name_problem(f"requests.{name}"):
        return f"{name!r} is an invalid extended resource name: it must not start with 'requests.', and requests.<name> must be a qualified name"
    return None


def _qualified_name_problem(value: str) -> str | None:
    parts = value.split("/")
    if len(parts) > 2:
        return "at most one '/'"
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "the prefix part must not be empty"
        if len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix):
            return "the prefix part must be a lower-case DNS subdomain"
    name = parts[-1]
    if not name:
        return "the name part must not be empty"
    if len(name) > 63:
        return "the name part must be no more than 63 characters"
    if not QUALIFIED_NAME.match(name):
        return "the name part must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
    return None


def _unknown(where: str, value: Any, allowed: frozenset[str]) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: not a mapping"]
    return [f"{where}: unknown key {key!r}" for key in sorted(set(value) - allowed, key=str)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _top_level_values(config: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if "leaderElection" in config:
        election = config["leaderElection"]
        found += _unknown("leaderElection", election, LEADER_ELECTION_KEYS)
        if isinstance(election, Mapping) and "leaderElect" in election and not isinstance(election["leaderElect"], bool):
            found.append("leaderElection.leaderElect: must be a boolean")
    if "clientConnection" in config:
        found += _unknown("clientConnection", config["clientConnection"], CLIENT_CONNECTION_KEYS)
    if "parallelism" in config and not (_is_int(config["parallelism"]) and config["parallelism"] > 0):
        found.append("parallelism: should be an integer value greater than zero")
    found += _percentage("percentageOfNodesToScore", config)
    initial, maximum = config.get("podInitialBackoffSeconds", 1), config.get("podMaxBackoffSeconds", 10)
    if not (_is_int(initial) and initial > 0):
        found.append("podInitialBackoffSeconds: must be an integer greater than 0")
    elif not (_is_int(maximum) and maximum >= initial):
        found.append("podMaxBackoffSeconds: must be an integer greater than or equal to podInitialBackoffSeconds")
    return found


def _percentage(where: str, holder: Mapping[str, Any]) -> list[str]:
    key = "percentageOfNodesToScore"
    if key in holder and not (_is_int(holder[key]) and 0 <= holder[key] <= 100):
        return [f"{where}: not in valid range [0-100]"]
    return []


def _profiles(profiles: Any, allowed: frozenset[str]) -> list[str]:
    if profiles is None:
        return []  # defaulted to one default-scheduler profile
    if not isinstance(profiles, list):
        return ["profiles: not a list"]
    found: list[str] = []
    seen: dict[Any, int] = {}
    for i, profile in enumerate(profiles):
        where = f"profiles[{i}]"
        found += _unknown(where, profile, allowed)
        if not isinstance(profile, Mapping):
            continue
        # Only a lone profile gets the default name; with several, each must be named.
        name = profile.get("schedulerName", "default-scheduler" if len(profiles) == 1 else "")
        if not isinstance(name, str) or not name:
            found.append(f"{where}.schedulerName: required (a non-empty string)")
        elif name in seen:
            found.append(f"{where}.schedulerName: duplicate of profiles[{seen[name]}].schedulerName {name!r}")
        else:
            seen[name] = i
        found += _percentage(f"{where}.percentageOfNodesToScore", profile)
    return found


def _extenders(extenders: Any) -> list[str]:
    if extenders is None:
        return []
    if not isinstance(extenders, list):
        return ["extenders: not a list"]
    found: list[str] = []
    binders = 0
    managed: set[str] = set()
    for i, extender in enumerate(extenders):
        where = f"extenders[{i}]"
        found += _unknown(where, extender, EXTENDER_KEYS)
        if not isinstance(extender, Mapping):
            continue
        found += _extender(where, extender)
        binders += bool(extender.get("bindVerb"))
        found += _managed_resources(where, extender.get("managedResources"), managed)
    if binders > 1:
        found.append(f"extenders: found {binders} extenders implementing bind; only one extender can implement bind (bindVerb)")
    return found


def _extender(where: str, extender: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key in _STRING_FIELDS:
        if key in extender and not isinstance(extender[key], str):
            found.append(f"{where}.{key}: must be a string")
    for key in _BOOL_FIELDS:
        if key in extender and not isinstance(extender[key], bool):
            found.append(f"{where}.{key}: must be a boolean (true or false)")
    url = extender.get("urlPrefix")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        found.append(f"{where}.urlPrefix: {url!r} is not an http(s) URL (kube-scheduler does not check it: every call would fail)")
    weight = extender.get("weight", 0)
    if not _is_int(weight):
        found.append(f"{where}.weight: must be an integer")
    elif extender.get("prioritizeVerb") and weight <= 0:
        found.append(f"{where}.weight: must have a positive weight applied to it (prioritizeVerb is set)")
    if "httpTimeout" in extender:
        timeout = extender["httpTimeout"]
        if not isinstance(timeout, str) or not GO_DURATION.match(timeout):
            found.append(f"{where}.httpTimeout: {timeout!r} is not a duration string such as 5s or 1m30s")
        elif timeout.startswith("-"):
            found.append(f"{where}.httpTimeout: {timeout!r} is negative: every call would time out at once")
    if "tlsConfig" in extender:
        found += _tls_config(f"{where}.tlsConfig", extender["tlsConfig"])
    return found


def _tls_config(where: str, tls: Any) -> list[str]:
    found = _unknown(where, tls, TLS_CONFIG_KEYS)
    if not isinstance(tls, Mapping):
        return found
    if "insecure" in tls and not isinstance(tls["insecure"], bool):
        found.append(f"{where}.insecure: must be a boolean (true or false)")
    for key in ("serverName", "certFile", "keyFile", "caFile"):
        if key in tls and not isinstance(tls[key], str):
            found.append(f"{where}.{key}: must be a string")
    for key in ("certData", "keyData", "caData"):
        if key in tls:
            try:  # []byte: base64 in YAML and JSON
                base64.b64decode(str(tls[key]), validate=True)
            except (binascii.Error, ValueError):
                found.append(f"{where}.{key}: must be base64 (the PEM file's bytes, encoded)")
    if tls.get("insecure") is True and (tls.get("caFile") or tls.get("caData")):
        found.append(
            f"{where}: insecure with caFile/caData fails kube-scheduler's start-up "
            "(specifying a root certificates file with the insecure flag is not allowed)"
        )
    return found


def _managed_resources(where: str, resources: Any, managed: set[str]) -> list[str]:
    if resources is None:
        return []
    if not isinstance(resources, list):
        return [f"{where}.managedResources: not a list"]
    found: list[str] = []
    for j, resource in enumerate(resources):
        at = f"{where}.managedResources[{j}]"
        found += _unknown(at, resource, MANAGED_RESOURCE_KEYS)
        if not isinstance(resource, Mapping):
            continue
        name = resource.get("name")
        problem = extended_resource_name_problem(name)
        if problem:
            found.append(f"{at}.name: {problem}")
        elif name in managed:
            found.append(f"{at}.name: {name!r}: duplicate extender managed resource name (names are unique across all extenders)")
        if isinstance(name, str):
            managed.add(name)
        if "ignoredByScheduler" in resource and not isinstance(resource["ignoredByScheduler"], bool):
            found.append(f"{at}.ignoredByScheduler: must be a boolean (true or false)")
    return found
