"""The controller versions a Project targets: what each needs at least, and what changes with the version.

Minimums, with the feature that sets them (sources: each project's CHANGELOG and API types):

- Argo Workflows 3.5: the oldest release still maintained when this was written; 3.6 adds CronWorkflow
  ``schedules`` and ``synchronization.mutexes`` (3.5 has only ``schedule`` and ``mutex``, and 4.0 only the
  lists), so the compiler writes whichever the version has.
- Argo Events 1.8: trigger ``atLeastOnce``; JetStream (1.7) with version 2.9.16 from 1.8.1.
- ArgoCD 2.7: the ``Delete=false`` sync option that keeps a manual environment's resources when its
  Application is deleted.
- prometheus-operator 0.53: AlertmanagerConfig matchers with ``matchType`` (0.53) and webhook
  ``httpConfig.authorization`` (0.51).
- Istio 1.20: ``mirrors`` and ``mirrorPercentage``; ``networking.istio.io/v1`` from 1.22 (``v1beta1`` before).
"""

from __future__ import annotations

from typing import Final

from .specs.project import PlatformVersions

MINIMUM: Final[dict[str, tuple[tuple[int, int], str]]] = {
    "argoWorkflows": ((3, 5), "the compiler writes synchronization and CronWorkflow schedules of 3.5 and later"),
    "argoEvents": ((1, 8), "triggers use `atLeastOnce` with a JetStream EventBus (Argo Events 1.8)"),
    "argocd": ((2, 7), "manual environments rely on the `Delete=false` sync option (ArgoCD 2.7)"),
    "prometheusOperator": ((0, 53), "AlertmanagerConfigs use matchers with `matchType` (prometheus-operator 0.53)"),
    "istio": ((1, 20), "rollouts use `mirrorPercentage` and `mirrors` (Istio 1.20)"),
    "kubernetes": ((1, 27), "Jobs use `podFailurePolicy` (Kubernetes 1.27, beta and on by default from 1.26)"),
}


def version(text: str) -> tuple[int, int]:
    """``"3.6"`` or ``"3.6.2"`` as (major, minor)."""
    major, minor, *_ = text.split(".")
    return int(major), int(minor)


def too_old(platform: PlatformVersions) -> list[tuple[str, str, str]]:
    """(field, declared version, why it is not enough) for every controller below its minimum."""
    found = []
    for field, (minimum, why) in MINIMUM.items():
        declared = getattr(platform, _attribute(field))
        if version(declared) < minimum:
            found.append((field, declared, f"at least {minimum[0]}.{minimum[1]} is needed: {why}"))
    return found


def _attribute(field: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in field)


def argo_workflows_lists(platform: PlatformVersions) -> bool:
    """Whether Argo Workflows takes ``schedules`` and ``mutexes`` (3.6 and later) rather than the singular forms."""
    return version(platform.argo_workflows) >= (3, 6)


def istio_api_version(platform: PlatformVersions) -> str:
    """``networking.istio.io/v1`` from Istio 1.22, ``v1beta1`` before."""
    return "networking.istio.io/v1" if version(platform.istio) >= (1, 22) else "networking.istio.io/v1beta1"
