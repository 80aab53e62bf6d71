"""What every generated pod that runs a runtime step shares: the hardened security contexts, writable scratch
volumes under a read-only root filesystem, and the environment that points the step at MLflow.

Plain camelCase dicts, shared by batch Jobs, Deployments and Argo templates.
"""

from __future__ import annotations

from ..resolve import EnvironmentView
from .base import Body

RUN_AS_USER = 1000
TMP_DIR = "/tmp"
HF_HOME = "/cache/huggingface"

# Volume name → mount path: the only writable places of a runtime pod (its root filesystem is read-only).
SCRATCH_DIRS: dict[str, str] = {"tmp": TMP_DIR, "hf-cache": HF_HOME}


def runtime_command(step: str) -> list[str]:
    """The container command of a runtime step (its arguments are spelled out by the caller)."""
    return ["python", "-m", f"llmops_compiler.runtime.{step}"]


def pod_security_context() -> Body:
    """Restricted Pod Security Standard: a fixed non-root user, RuntimeDefault seccomp."""
    return {
        "fsGroup": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Body:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def scratch_volumes() -> list[Body]:
    return [{"name": name, "emptyDir": {}} for name in SCRATCH_DIRS]


def scratch_mounts() -> list[Body]:
    return [{"name": name, "mountPath": path} for name, path in SCRATCH_DIRS.items()]


def mlflow_env(view: EnvironmentView) -> list[Body]:
    """MLflow's tracking URI, and its token taken from the Project's Secret reference (never a value)."""
    mlflow = view.project.spec.mlflow
    env: list[Body] = [{"name": "MLFLOW_TRACKING_URI", "value": mlflow.tracking_uri}]
    if mlflow.credentials is not None:
        env.append({
            "name": "MLFLOW_TRACKING_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": mlflow.credentials.name, "key": mlflow.credentials.key}},
        })
    return env


def runtime_env(view: EnvironmentView) -> list[Body]:
    """MLflow settings, plus caches and HOME on the scratch volumes and the Hugging Face hub switched off:
    every model and dataset arrives as an artifact, so a step never downloads anything on its own."""
    return [
        *mlflow_env(view),
        {"name": "HOME", "value": TMP_DIR},
        {"name": "HF_HOME", "value": HF_HOME},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def object_store_env(view: EnvironmentView) -> list[Body]:
    """The Project's object store keys for steps that read ``s3://`` themselves (boto3's variables), by Secret
    reference; none when the pods' identity gives access."""
    store = view.project.spec.runtime.object_store
    if store.access_key is None or store.secret_key is None:
        return []
    return [
        {"name": "AWS_ACCESS_KEY_ID",
         "valueFrom": {"secretKeyRef": {"name": store.access_key.name, "key": store.access_key.key}}},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": {"secretKeyRef": {"name": store.secret_key.name, "key": store.secret_key.key}}},
    ]


def object_store_arguments(view: EnvironmentView) -> list[str]:
    """``--endpoint``/``--insecure`` of a step that reads the Project's object store itself (none for AWS S3)."""
    store = view.project.spec.runtime.object_store
    if store.endpoint == "s3.amazonaws.com":
        return []
    return ["--endpoint", store.endpoint, *(["--insecure"] if store.insecure else [])]
