"""One pydantic model per spec kind; ``SPEC_MODELS`` maps a kind to the model of its ``spec``."""

from __future__ import annotations

from pydantic import BaseModel

from .chain import ChainSpec
from .dataset import DatasetSpec
from .knowledge_base import KnowledgeBaseSpec
from .model import ModelSpec
from .monitor import MonitorSpec
from .project import ProjectSpec
from .prompt import PromptSpec
from .rollout import RolloutPolicySpec, RolloutStateSpec
from .tool import ToolSpec

SPEC_MODELS: dict[str, type[BaseModel]] = {
    "Project": ProjectSpec,
    "Model": ModelSpec,
    "Prompt": PromptSpec,
    "Chain": ChainSpec,
    "Tool": ToolSpec,
    "KnowledgeBase": KnowledgeBaseSpec,
    "Dataset": DatasetSpec,
    "Monitor": MonitorSpec,
    "RolloutPolicy": RolloutPolicySpec,
    "RolloutState": RolloutStateSpec,
}
KINDS = tuple(SPEC_MODELS)

__all__ = [
    "KINDS",
    "SPEC_MODELS",
    "ChainSpec",
    "DatasetSpec",
    "KnowledgeBaseSpec",
    "ModelSpec",
    "MonitorSpec",
    "ProjectSpec",
    "PromptSpec",
    "RolloutPolicySpec",
    "RolloutStateSpec",
    "ToolSpec",
]
