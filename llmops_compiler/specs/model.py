"""Model: a base model, how it is tuned and evaluated, where it is registered and served."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from .common import (
    DnsLabel,
    Duration,
    LabelKey,
    LabelValue,
    Line,
    MlflowAlias,
    PinnedImage,
    Resources,
    StrictModel,
    Toleration,
    Url,
    _dns_label,
    _url,
)


def _dataset_reference(value: str) -> str:
    if "://" in value:
        return _url(value)
    return _dns_label(value)


DatasetRef = Annotated[str, AfterValidator(_dataset_reference),
                       WithJsonSchema({"type": "string", "description": "a URI, or the name of a Dataset"})]


def is_dataset_name(value: str) -> bool:
    """Whether a dataset reference names a Dataset spec rather than a URI."""
    return "://" not in value


EVALUATION_METRICS = ("exact_match", "token_f1", "rouge_l", "perplexity", "judge")
LOWER_IS_BETTER = frozenset({"perplexity"})
MODULE_NAME = r"^[A-Za-z0-9_.*\[\]-]+$"


class ServiceRef(StrictModel):
    """The Kubernetes Service that serves the model (the app team's own, or the one the compiler generates)."""

    name: DnsLabel
    """Service name."""
    port: int = Field(ge=1, le=65535)
    """Service port of the OpenAI-compatible API."""
    namespace: DnsLabel | None = None
    """Namespace of the Service (default: the environment's namespace); it must be one of the environments'."""


class ServingDeployment(StrictModel):
    """The serving workloads the compiler runs for the model: a Deployment per track (`stable`, and `candidate`
    while one is rolled out), each pinned to the registered version the RolloutState names, fetched from MLflow
    by an init container (`runtime fetch_model`), never resolved from an alias at pod start."""

    image: PinnedImage | None = None
    """Serving image, pinned by digest; default: the Project's runtime image running the reference server
    (`python -m llmops_compiler.runtime.serve`)."""
    command: list[Line] = []
    """The server's command (empty: the image's entrypoint, or the reference server)."""
    args: list[Line] = []
    """The server's arguments; `{{modelDir}}`, `{{port}}`, `{{model}}` and `{{version}}` are filled in (empty:
    the reference server's)."""
    port: int = Field(default=8080, ge=1, le=65535)
    """Container port of the OpenAI-compatible API (the Service forwards its port there)."""
    replicas: int = Field(default=1, ge=1, le=100)
    """Pods per track."""
    resources: Resources = Resources()
    """Requests and limits of the server container."""
    node_selector: dict[LabelKey, LabelValue] = {}
    """Node labels the serving pods need."""
    tolerations: list[Toleration] = []
    """Taints the serving pods tolerate."""
    readiness_path: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/readyz"
    """HTTP path that answers 200 once the model is loaded."""
    liveness_path: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/healthz"
    """HTTP path that answers 200 while the server lives."""


class Serving(StrictModel):
    """How the model is served and which MLflow aliases name the serving versions."""

    service: ServiceRef
    """Where requests for the model go."""
    deployment: ServingDeployment | None = None
    """Let the compiler run the serving workloads (otherwise the app team's own pods, labelled with
    `versionLabel`, are selected)."""
    stable_alias: MlflowAlias = "stable"
    """MLflow alias of the version serving all traffic (moved only by a promotion)."""
    candidate_alias: MlflowAlias = "candidate"
    """MLflow alias `register` puts on a new version (must differ from `stableAlias`)."""
    version_label: LabelKey = "version"
    """Pod label that tells the serving versions apart (Istio subsets select on it)."""


class LoraConfig(StrictModel):
    """Low-rank adaptation settings (peft's `LoraConfig`)."""

    r: int = Field(gt=0, le=1024)
    """Rank of the update matrices."""
    alpha: int = Field(gt=0)
    """Scaling numerator: updates are scaled by `alpha / r`."""
    dropout: float = Field(ge=0, lt=1, default=0.05)
    """Dropout on the adapter's input."""
    target_modules: list[Annotated[str, Field(pattern=MODULE_NAME, max_length=256)]] = []
    """Module names to adapt (e.g. `q_proj`, `v_proj`); empty for peft's default for the architecture. A name that
    matches no module of the model fails the tuning step."""


class Tuning(StrictModel):
    """How a retrain fine-tunes the base model."""

    method: Literal["lora", "qlora", "full"]
    """`lora` (adapter), `qlora` (4-bit base on a CUDA GPU) or `full` fine-tuning."""
    lora: LoraConfig | None = None
    """Adapter settings, for `lora` and `qlora`."""
    dataset: DatasetRef
    """Training data: prompt/completion JSONL (`s3://`, `gs://` or `https://`), or the name of a Dataset (its
    latest version's train split; the registered version records which version)."""
    epochs: int = Field(gt=0, le=1000, default=1)
    """Passes over the training data."""
    learning_rate: float = Field(gt=0, lt=1, default=2e-4)
    """Optimizer learning rate."""
    max_steps: int = Field(ge=-1, default=-1)
    """Stop after this many optimizer steps (-1: no limit)."""
    batch_size: int = Field(gt=0, le=4096, default=8)
    """Examples per optimizer step."""
    seed: int = 42
    """Random seed, for reproducible runs."""
    resources: Resources = Resources()
    """Requests and limits of the tuning and evaluation pods (GPUs as `nvidia.com/gpu`)."""
    node_selector: dict[LabelKey, LabelValue] = {}
    """Node labels the tuning and evaluation pods need (the GPU node type)."""
    tolerations: list[Toleration] = []
    """Taints of the GPU nodes the pods tolerate."""
    timeout: Duration = "6h"
    """Longest a whole retrain may take, retries included; also the cooldown: a model is not retrained again
    within this time of its last retrain's start."""
    retries: int = Field(ge=0, le=10, default=2)
    """Retries of a step that failed for a passing reason (pod evicted, MLflow down); a failed gate never
    retries."""


class Gate(StrictModel):
    """A condition on one evaluation metric that must hold before the model is registered."""

    merge_key: ClassVar[str] = "metric"

    metric: Line
    """The metric (one of `evaluation.metrics`)."""
    min: float | None = None
    """The metric must be at least this."""
    max: float | None = None
    """The metric must be at most this."""
    max_regression: float | None = Field(default=None, ge=0)
    """The metric may be worse than the stable version's by at most this much."""


class Evaluation(StrictModel):
    """How a tuned model is evaluated before it is registered."""

    dataset: DatasetRef
    """Evaluation data: prompt/completion JSONL, or the name of a Dataset (its latest version's eval split)."""
    metrics: Annotated[list[Line], Field(min_length=1)]
    """Metrics to compute: `exact_match`, `token_f1`, `rouge_l`, `perplexity`, `judge`."""
    gates: list[Gate] = []
    """Conditions that must all hold; a failed gate stops the retrain before registration."""
    judge_url: Url | None = None
    """OpenAI-compatible endpoint of the LLM judge, for the `judge` metric."""
    max_new_tokens: int = Field(gt=0, le=4096, default=64)
    """Tokens generated per evaluation prompt."""


class Quantization(StrictModel):
    """Optional quantization of the tuned model before registration."""

    method: Literal["int8-dynamic"] = "int8-dynamic"
    """Quantization method (int8 dynamic quantization on CPU)."""


class ModelSpec(StrictModel):
    """A model: its base, where it is registered, how it is served, tuned and evaluated."""

    base_model: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
    """Base model: a URI (`s3://...`) or a hub name baked into the runtime image."""
    registered_model: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    """Registered-model name in MLflow's registry."""
    serving: Serving | None = None
    """How the model is served (needed for rollouts and SLO rules by namespace)."""
    tuning: Tuning | None = None
    """How a retrain fine-tunes the model."""
    evaluation: Evaluation | None = None
    """How a tuned model is evaluated before registration."""
    quantization: Quantization | None = None
    """Quantize the tuned model before registering it."""
