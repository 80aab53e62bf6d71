"""The containers that run ``runtime promote``: the analysis CronWorkflow, the rollback template and the tune
workflow's last step all change a rollout the same way, through a commit (see :mod:`llmops_compiler.gitops`).

The step clones the GitOps repository and reads everything else (the policy, the Model, Prometheus, MLflow) from
the specs in it, so a workflow passes only which rollout and what to do. Git credentials come from the Secret the
Project's ``delivery.gitToken`` names; the pods have no rights in the cluster beyond Argo's executor's.
"""

from __future__ import annotations

from ..resolve import EnvironmentView
from . import argo, workloads
from .base import Body

GIT_TOKEN_ENV = "LLMOPS_GIT_TOKEN"
REQUESTS = {"cpu": "250m", "memory": "512Mi"}
LIMITS = {"memory": "2Gi"}
# How long one transition may take: a clone, a compile, a few pushes.
DEADLINE_SECONDS = 900
RETRIES = 3


def promote_arguments(view: EnvironmentView, policy: str, *action: str) -> list[str]:
    """The ``promote`` command line for ``policy`` in this environment, then ``action`` (``--rollback ...``)."""
    project = view.project.spec
    delivery = project.delivery
    args = ["--repo-url", project.repo.url, "--branch", project.repo.branch, "--policy", policy,
            "--environment", view.name, "--mode", delivery.mode,
            "--author-name", delivery.author_name, "--author-email", delivery.author_email]
    if delivery.git_token is not None:
        args += ["--git-token-env", GIT_TOKEN_ENV]
    if delivery.mode == "pullRequest":
        args += ["--forge-api", delivery.forge_api, "--forge-repository", delivery.forge_repository or "",
                 "--forge-token-env", GIT_TOKEN_ENV]
    return [*args, *action]


def promote_env(view: EnvironmentView) -> list[Body]:
    """MLflow settings and the git token (a Secret reference, never a value)."""
    env = workloads.runtime_env(view)
    token = view.project.spec.delivery.git_token
    if token is not None:
        env.append({"name": GIT_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}})
    return env


def promote_template(view: EnvironmentView, name: str, args: list[str], inputs: tuple[str, ...] = ()) -> Body:
    """An Argo template running ``promote`` with ``args`` (``inputs``: the template's input parameters)."""
    template: Body = {
        "name": name,
        "container": argo.container(view, workloads.runtime_command("promote"), args, promote_env(view),
                                    REQUESTS, LIMITS),
        # Exit 3 (git, Prometheus or MLflow out of reach) may pass next time; 1 and 2 never will.
        "retryStrategy": {"limit": RETRIES, "retryPolicy": "Always", "expression": argo.RETRY_EXPRESSION,
                          "backoff": {"duration": "30s", "factor": 2, "maxDuration": f"{DEADLINE_SECONDS}s"}},
    }
    if inputs:
        template["inputs"] = {"parameters": [{"name": item} for item in inputs]}
    return template


def rollout_mutex(policy: str) -> str:
    """One transition of a rollout at a time, whoever starts it (analysis, rollback, a new candidate)."""
    return f"rollout-{policy}"

