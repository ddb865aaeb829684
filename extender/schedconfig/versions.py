"""Which ``KubeSchedulerConfiguration`` API versions each kube-scheduler release accepts.

Read from the tags of k8s.io/kube-scheduler (v0.22.0 .. v0.35.0, ``config/``) and
protocol.md §4: ``v1beta2`` came in 1.22 and went in 1.28, ``v1beta3`` came in 1.23 and
went in 1.29, ``v1`` (KubeSchedulerConfiguration) is served from 1.25. 1.22's
``kubescheduler.config.k8s.io/v1`` is the legacy Policy kind only: a v1
KubeSchedulerConfiguration does not decode there. The decoding is strict, so the keys
allowed at the top level and in a profile follow the version too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GROUP = "kubescheduler.config.k8s.io"
OLDEST_MINOR = 22
NEWEST_MINOR = 35

_VERSION = re.compile(r"^v?1\.(\d+)(\.\d+)?([-+].*)?$")


class VersionError(ValueError):
    """A Kubernetes version this module cannot render or check a configuration for."""


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes 1.x minor release (patch releases do not change the config API)."""

    minor: int

    def __str__(self) -> str:
        return f"1.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        """``1.30``, ``v1.30.6`` or ``1.30.6-eks.1``; refuses releases outside 1.22..1.35."""
        match = _VERSION.match(text.strip())
        if not match:
            raise VersionError(f"--k8s-version {text!r}: expected a Kubernetes version such as 1.30 or v1.30.6")
        minor = int(match.group(1))
        if minor < OLDEST_MINOR:
            raise VersionError(
                f"Kubernetes 1.{minor} is not supported (1.{OLDEST_MINOR} to 1.{NEWEST_MINOR}): releases before "
                f"1.{OLDEST_MINOR} know no newer {GROUP} version than v1beta1"
            )
        if minor > NEWEST_MINOR:
            raise VersionError(
                f"Kubernetes 1.{minor} is newer than this extender knows (1.{OLDEST_MINOR} to 1.{NEWEST_MINOR}); "
                f"{GROUP}/v1 is probably still right: render for 1.{NEWEST_MINOR} and check that release's notes"
            )
        return cls(minor)


NEWEST = KubeVersion(NEWEST_MINOR)


def accepted_api_versions(version: KubeVersion) -> tuple[str, ...]:
    """Every ``apiVersion`` of a KubeSchedulerConfiguration that ``version`` decodes, newest first."""
    minor = version.minor
    accepted = []
    if minor >= 25:
        accepted.append("v1")
    if 23 <= minor <= 28:
        accepted.append("v1beta3")
    if 22 <= minor <= 27:
        accepted.append("v1beta2")
    if minor == 22:
        accepted.append("v1beta1")
    return tuple(f"{GROUP}/{name}" for name in accepted)


def api_version_for(version: KubeVersion) -> str:
    """The version to write: the newest ``version`` accepts (v1 from 1.25; the betas before
    are deprecated from the release that adds their successor)."""
    return accepted_api_versions(version)[0]


def newest_accepting(api_version: str) -> KubeVersion | None:
    """The newest supported release that accepts ``api_version`` (None: none does)."""
    for minor in range(NEWEST_MINOR, OLDEST_MINOR - 1, -1):
        if api_version in accepted_api_versions(KubeVersion(minor)):
            return KubeVersion(minor)
    return None


# The JSON tags of KubeSchedulerConfiguration (with componentbase's DebuggingConfiguration
# inlined) and of KubeSchedulerProfile, as each API version has them in each release.
_TOP_LEVEL_KEYS = frozenset({
    "apiVersion", "kind", "parallelism", "leaderElection", "clientConnection",
    "enableProfiling", "enableContentionProfiling",
    "percentageOfNodesToScore", "podInitialBackoffSeconds", "podMaxBackoffSeconds",
    "profiles", "extenders",
})  # fmt: skip
_PROFILE_KEYS = frozenset({"schedulerName", "plugins", "pluginConfig"})


def top_level_keys(api_version: str, version: KubeVersion) -> frozenset[str]:
    """Keys strict decoding accepts at the top level."""
    keys = set(_TOP_LEVEL_KEYS)
    if api_version.endswith(("/v1beta1", "/v1beta2")):
        keys |= {"healthzBindAddress", "metricsBindAddress"}  # dropped by v1beta3
    if api_version.endswith("/v1") and version.minor >= 28:
        keys.add("delayCacheUntilActive")
    return frozenset(keys)


def profile_keys(api_version: str, version: KubeVersion) -> frozenset[str]:
    """Keys strict decoding accepts in a profile (v1 has percentageOfNodesToScore from 1.26)."""
    if api_version.endswith("/v1") and version.minor >= 26:
        return _PROFILE_KEYS | {"percentageOfNodesToScore"}
    return _PROFILE_KEYS


LEADER_ELECTION_KEYS = frozenset({
    "leaderElect", "leaseDuration", "renewDeadline", "retryPeriod",
    "resourceLock", "resourceName", "resourceNamespace",
})  # fmt: skip
CLIENT_CONNECTION_KEYS = frozenset({"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"})
# protocol.md §3: the Extender type's JSON tags, identical from v1beta1 to v1.
EXTENDER_KEYS = frozenset({
    "urlPrefix", "filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb", "weight",
    "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources", "ignorable",
})  # fmt: skip
TLS_CONFIG_KEYS = frozenset({"insecure", "serverName", "certFile", "keyFile", "caFile", "certData", "keyData", "caData"})
MANAGED_RESOURCE_KEYS = frozenset({"name", "ignoredByScheduler"})
