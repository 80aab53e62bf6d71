"""Jobs: per environment with prompts, ``register-prompts-<hash>``, which registers every prompt of the
environment in MLflow's prompt registry and points the environment's alias (``prompts:/<name>@<env>``) at it.

The name hashes the whole Job, whose prompt volume names the content-hashed prompt ConfigMaps: a prompt
change (or a new runtime image or MLflow setting) makes a new Job that runs once, and ArgoCD prunes the one
it replaces. A Job's pod template is immutable, so any other way of changing it would fail the sync.

No ``ttlSecondsAfterFinished``: ArgoCD would see the deleted Job as missing and, with self-heal, create and
run it again (argoproj/argo-cd#8586); pruning on the next prompt change does the clean-up instead.
"""

from __future__ import annotations

import hashlib
import json

from .. import conventions
from ..resolve import EnvironmentView
from . import workloads
from .base import Body, Resource, metadata, resource
from .configmaps import prompt_configmap_name

PROMPTS_DIR = "/prompts"
CONTAINER = "register-prompts"
BACKOFF_LIMIT = 3
DEADLINE_SECONDS = 15 * 60
EXIT_USAGE = 2  # the runtime steps' "bad input" exit code: retrying cannot help


def prompt_registration_job(view: EnvironmentView) -> list[Resource]:
    prompts = view.prompts()
    if not prompts:
        return []
    configmaps = [prompt_configmap_name(view, prompt) for prompt in prompts]
    pod_labels = metadata(view, CONTAINER, component="prompt-registration")["labels"]
    container: Body = {
        "name": CONTAINER,
        "image": view.project.spec.runtime.image,
        "command": workloads.runtime_command("register_prompt"),
        "args": [
            "--prompts-dir", PROMPTS_DIR, "--alias", view.name, "--git-commit", conventions.UNKNOWN_COMMIT,
            "--mlflow-tracking-uri", "$(MLFLOW_TRACKING_URI)",
        ],
        "env": workloads.runtime_env(view),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": workloads.container_security_context(),
        "volumeMounts": [{"name": "prompts", "mountPath": PROMPTS_DIR, "readOnly": True},
                         *workloads.scratch_mounts()],
    }
    spec: Body = {
        "backoffLimit": BACKOFF_LIMIT,
        "activeDeadlineSeconds": DEADLINE_SECONDS,
        "podFailurePolicy": {"rules": [
            {"action": "FailJob",
             "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_USAGE]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "serviceAccountName": conventions.WORKFLOW_SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,  # it talks to MLflow only, never to the Kubernetes API
                "restartPolicy": "Never",
                "securityContext": workloads.pod_security_context(),
                "containers": [container],
                "volumes": [
                    {"name": "prompts",
                     "projected": {"sources": [{"configMap": {"name": name}} for name in configmaps]}},
                    *workloads.scratch_volumes(),
                ],
            },
        },
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    body: Body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(view, f"register-prompts-{digest}", component="prompt-registration",
                             extra_annotations={conventions.ANNOTATION_CONTENT_HASH: digest}),
        "spec": spec,
    }
    return [resource(view, body, ", ".join(prompt.file for prompt in prompts))]
