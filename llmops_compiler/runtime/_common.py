"""Helpers shared by the model-lifecycle step programs (tune, evaluate, register, register_prompt, quantize).

Conventions every step follows:

* exit codes: ``0`` success, ``1`` a quality gate failed, ``2`` bad input / usage (missing file, malformed
  JSONL, unsupported option such as ``qlora`` without a GPU), ``3`` a runtime failure of something outside
  the step (MLflow, judge endpoint, model code);
* errors are reported as one line ``<step>: error: <message>`` on stderr, never a traceback
  (set ``LLMOPS_DEBUG=1`` to get the traceback as well);
* heavy libraries (torch, transformers, peft, mlflow) are imported inside functions only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3

#: Environment variable naming the artifact root for experiments a step has to create itself (only
#: relevant with a database tracking URI such as ``sqlite:///...``; a tracking *server* picks its own).
ARTIFACT_ROOT_ENV = "LLMOPS_MLFLOW_ARTIFACT_ROOT"
DEFAULT_EXPERIMENT = "llmops"


class StepError(Exception):
    """An expected failure: reported as one line on stderr and turned into an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class UsageError(StepError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class RuntimeStepError(StepError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_RUNTIME)


def run_step(step: str, body: Callable[[], int]) -> int:
    """Run ``body`` and map exceptions to an exit code with a one-line message on stderr."""
    try:
        return body()
    except StepError as exc:
        _report(step, str(exc))
        return exc.code
    except KeyboardInterrupt:
        _report(step, "interrupted")
        return 130
    except Exception as exc:
        _report(step, f"{type(exc).__name__}: {exc}")
        return EXIT_RUNTIME


def _report(step: str, message: str) -> None:
    if os.environ.get("LLMOPS_DEBUG"):
        traceback.print_exc()
    one_line = " ".join(message.split())
    print(f"{step}: error: {one_line}", file=sys.stderr)


class ArgParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors raise :class:`UsageError` (exit 2, one line)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --- files -----------------------------------------------------------------------------------------


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} not found: {p}")
    return p


def require_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{what} is not a directory: {p}")
    return p


def read_jsonl(
    path: str | Path, required: Sequence[str] = (), optional: Sequence[str] = (), what: str = "dataset"
) -> list[dict[str, Any]]:
    """Read a JSONL file of objects (gzip when its name ends in ``.gz``); blank lines are skipped.

    Raises :class:`UsageError` naming the 1-based line number for a line that is not a JSON object, lacks
    a required key, or has a non-string value for a required/optional key; and for a file with no records.
    Lines are parsed by :func:`llmops_compiler.runtime._logs.iter_jsonl_file`, as every runtime step does.
    """
    from llmops_compiler.runtime._logs import LogInputError, iter_jsonl_file

    p = require_file(path, what)
    records: list[dict[str, Any]] = []
    try:
        for lineno, _, obj in iter_jsonl_file(p):
            for key in required:
                if key not in obj:
                    raise UsageError(f"{p}: line {lineno}: missing key '{key}'")
            for key in (*required, *optional):
                if key in obj and obj[key] is not None and not isinstance(obj[key], str):
                    raise UsageError(f"{p}: line {lineno}: '{key}' must be a string")
            records.append(obj)
    except LogInputError as exc:
        where = f"{p}: line {exc.line}" if exc.line is not None else str(p)
        raise UsageError(f"{where}: {exc.reason}") from None
    if not records:
        raise UsageError(f"{what} is empty: {p}")
    return records


def write_json(path: str | Path, obj: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def read_run_id(path: str | Path | None) -> str | None:
    """The MLflow run id stored in ``path`` (written by ``tune --run-id-out``); ``None`` if absent/empty."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    text = p.read_text(encoding="utf-8").strip()
    return text or None


def split_csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def format_prompt(prompt: str, context: str | None = None) -> str:
    """The model input for an example: the optional context, a blank line, then the prompt."""
    return f"{context}\n\n{prompt}" if context else prompt


# --- torch / transformers ----------------------------------------------------------------------------


MLFLOW_HTTP_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
"""The MLflow client's HTTP retries in a step, unless the environment sets them: 3 retries 1, 2 and 4 s apart
(about 7 s) instead of MLflow's 7 retries with a factor of 2 (about 4 minutes), since the workflow retries
the whole step (exit 3) with a backoff of its own."""


def quiet_libraries() -> None:
    """Silence progress bars and chatty INFO logs of transformers / mlflow / alembic, and bound MLflow's HTTP
    retries (:data:`MLFLOW_HTTP_DEFAULTS`)."""
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    noisy = r"(torch|transformers|peft|mlflow|sqlalchemy|accelerate)(\..*)?$"
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=noisy)
    warnings.filterwarnings("ignore", category=FutureWarning, module=noisy)
    for name in ("mlflow", "alembic", "transformers", "peft", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a runtime dependency
        pass


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(*dirs: str | Path | None) -> Any:
    """Load the tokenizer from the first of ``dirs`` that contains one; ensure a pad token exists."""
    from transformers import AutoTokenizer

    candidates = [Path(d) for d in dirs if d]
    for d in candidates:
        if (d / "tokenizer_config.json").is_file() or (d / "tokenizer.json").is_file():
            tok = AutoTokenizer.from_pretrained(str(d))
            break
    else:
        raise UsageError(f"no tokenizer found in {', '.join(map(str, candidates))}")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UsageError("tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(model_dir: str | Path, adapter: str | Path | None = None, *, merge: bool = False) -> Any:
    """Load a causal LM from a local directory, optionally with a LoRA adapter (merged if ``merge``)."""
    import torch
    from transformers import AutoModelForCausalLM

    require_dir(model_dir, "model directory")
    if not (Path(model_dir) / "config.json").is_file():
        raise UsageError(f"not a Hugging Face model directory (no config.json): {model_dir}")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter:
        require_dir(adapter, "adapter directory")
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise UsageError(f"not a PEFT adapter directory (no adapter_config.json): {adapter}")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload()
    return model


# --- MLflow -----------------------------------------------------------------------------------------


def mlflow_client(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` for ``tracking_uri`` (also used as the registry URI)."""
    quiet_libraries()
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # mlflow resets its level on import
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, creating it (under ``$LLMOPS_MLFLOW_ARTIFACT_ROOT/<name>`` if set)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    root = os.environ.get(ARTIFACT_ROOT_ENV)
    location = f"{root.rstrip('/')}/{name}" if root else None
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except Exception:
        # Lost a creation race with a parallel step: use the winner's experiment.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: dict[str, Any] | None = None,
    metrics: Iterable[tuple[str, float, int]] = (),
    tags: dict[str, str] | None = None,
) -> None:
    """Log params, ``(key, value, step)`` metrics and tags in chunks that fit MLflow's batch limits."""
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    param_list = [Param(k, str(v)) for k, v in (params or {}).items()]
    metric_list = [Metric(k, float(v), now, int(s)) for k, v, s in metrics]
    tag_list = [RunTag(k, v) for k, v in (tags or {}).items()]
    for i in range(0, len(param_list), 100):
        client.log_batch(run_id, params=param_list[i : i + 100])
    for i in range(0, len(metric_list), 1000):
        client.log_batch(run_id, metrics=metric_list[i : i + 1000])
    for i in range(0, len(tag_list), 100):
        client.log_batch(run_id, tags=tag_list[i : i + 100])
