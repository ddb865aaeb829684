"""``extender scheduler-config``: render and check kube-scheduler's ``KubeSchedulerConfiguration``.

Pure (no HTTP, no Kubernetes API): :func:`render` builds the configuration for a policy and a
setup, :func:`problems` says what kube-scheduler would refuse in any configuration (also the
hand-written ones under deploy/), :class:`KubeVersion` knows which API version each release takes.
"""

from extender.schedconfig.render import Rendered, Setup, render
from extender.schedconfig.validate import extended_resource_name_problem, problems
from extender.schedconfig.versions import KubeVersion, VersionError, accepted_api_versions, api_version_for

__all__ = [
    "KubeVersion",
    "Rendered",
    "Setup",
    "VersionError",
    "accepted_api_versions",
    "api_version_for",
    "extended_resource_name_problem",
    "problems",
    "render",
]
