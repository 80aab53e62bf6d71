"""Model: a base model, how it is tuned and evaluated, where it is registered and served."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import DnsLabel, Duration, LabelKey, Resources, StrictModel, Toleration, Url

EVALUATION_METRICS = ("exact_match", "token_f1", "rouge_l", "perplexity", "judge")
LOWER_IS_BETTER = frozenset({"perplexity"})


class ServiceRef(StrictModel):
    name: DnsLabel
    port: int = Field(ge=1, le=65535)
    namespace: DnsLabel | None = None


class Serving(StrictModel):
    service: ServiceRef
    stable_alias: str = "stable"
    candidate_alias: str = "candidate"
    version_label: LabelKey = "version"


class LoraConfig(StrictModel):
    r: int = Field(gt=0, le=1024)
    alpha: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1, default=0.05)
    target_modules: list[str] = []


class Tuning(StrictModel):
    method: Literal["lora", "qlora", "full"]
    lora: LoraConfig | None = None
    dataset: Url
    epochs: int = Field(gt=0, le=1000, default=1)
    learning_rate: float = Field(gt=0, lt=1, default=2e-4)
    max_steps: int = Field(ge=-1, default=-1)
    batch_size: int = Field(gt=0, default=8)
    seed: int = 42
    resources: Resources = Resources()
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    timeout: Duration = "6h"
    retries: int = Field(ge=0, le=10, default=2)


class Gate(StrictModel):
    """A condition on one evaluation metric that must hold before the model is registered."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_regression: float | None = Field(default=None, ge=0)


class Evaluation(StrictModel):
    dataset: Url
    metrics: list[str] = Field(min_length=1)
    gates: list[Gate] = []
    judge_url: Url | None = None
    max_new_tokens: int = Field(gt=0, le=4096, default=64)


class Quantization(StrictModel):
    method: Literal["int8-dynamic"] = "int8-dynamic"


class ModelSpec(StrictModel):
    base_model: str = Field(min_length=1)
    registered_model: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    serving: Serving | None = None
    tuning: Tuning | None = None
    evaluation: Evaluation | None = None
    quantization: Quantization | None = None
