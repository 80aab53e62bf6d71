"""Synthetic spec projects of any size, for the scale benchmark and the atomicity test.

A project of N specs holds one Project and, in rotation, tuned Models, Prompts, Tools, KnowledgeBases,
Chains and Monitors that reference each other, so resolution and every target do real work (tune
WorkflowTemplates, PrometheusRules, drift CronWorkflows, Sensors, ConfigMaps).
"""

from __future__ import annotations

from pathlib import Path

PROJECT = """apiVersion: llmops.dev/v1alpha1
kind: Project
metadata: {{name: synthetic}}
spec:
  repo: {{url: https://git.example.com/synthetic.git, branch: main, path: generated}}
  environments:
{environments}
  mlflow: {{trackingUri: http://mlflow.mlops.svc:5000}}
  runtime: {{image: "registry.example.com/llmops-runtime@sha256:{digest}"}}
  prometheus: {{url: http://prometheus.monitoring.svc:9090, pushgatewayUrl: http://pushgateway.monitoring.svc:9091}}
"""

MODEL = """apiVersion: llmops.dev/v1alpha1
kind: Model
metadata: {{name: model-{i}}}
spec:
  baseModel: s3://models/base-{i}
  registeredModel: model-{i}
  serving: {{service: {{name: model-{i}, port: 8080}}}}
  tuning:
    method: lora
    lora: {{r: 8, alpha: 16, targetModules: [q_proj, v_proj]}}
    dataset: s3://data/model-{i}/train.jsonl
    resources:
      requests: {{cpu: "4", memory: 24Gi, nvidia.com/gpu: 1}}
      limits: {{memory: 32Gi, nvidia.com/gpu: 1}}
  evaluation:
    dataset: s3://data/model-{i}/eval.jsonl
    metrics: [token_f1, rouge_l]
    gates: [{{metric: token_f1, min: 0.5}}]
"""

MONITOR = """apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata: {{name: monitor-{i}}}
spec:
  model: model-{model}
  logs: s3://logs/model-{model}/
  features:
    - {{name: prompt_length, type: length, field: prompt}}
  slos:
    - {{name: errors, type: errorRatio, objective: 0.999, action: notify}}
    - {{name: latency, type: latency, objective: 0.99, latencyThreshold: 2.5, action: notify}}
  drift:
    - {{name: prompt-length, feature: prompt_length, reference: s3://data/model-{model}/ref.jsonl, threshold: 0.2}}
  evaluation: {{window: 1h, embeddingModel: sentence-transformers/all-MiniLM-L6-v2}}
  quality:
    - {{metric: groundedness, minimum: 0.8}}
"""

PROMPT = """apiVersion: llmops.dev/v1alpha1
kind: Prompt
metadata: {{name: prompt-{i}}}
spec:
  model: model-{model}
  version: 1.0.{i}
  template: |
    You answer questions about topic {i}.
    Question: {{{{ question }}}}
    Context: {{{{ context }}}}
  inputs:
    - name: question
    - name: context
"""

TOOL = """apiVersion: llmops.dev/v1alpha1
kind: Tool
metadata: {{name: tool-{i}}}
spec:
  description: Tool number {i}.
  kind: rest
  endpoint: https://tools.example.com/{i}
  parameters:
    type: object
    properties: {{query: {{type: string}}}}
    required: [query]
"""

KNOWLEDGE_BASE = """apiVersion: llmops.dev/v1alpha1
kind: KnowledgeBase
metadata: {{name: kb-{i}}}
spec:
  source: {{bucket: docs-{i}, prefix: articles/, endpoint: "minio.storage.svc:9000"}}
  chunking: {{size: 800, overlap: 100}}
  embedding: {{model: all-minilm-l6-v2, dimension: 384}}
  vectorStore: {{uri: http://milvus.vector.svc:19530, collection: kb_{i}}}
"""

CHAIN = """apiVersion: llmops.dev/v1alpha1
kind: Chain
metadata: {{name: chain-{i}}}
spec:
  inputs: [question]
  steps:
    - name: passages
      retrieve: kb-{kb}
      inputs: {{query: input.question}}
    - name: lookup
      tool: tool-{tool}
      inputs: {{query: input.question}}
    - name: answer
      prompt: prompt-{prompt}
      inputs: {{question: input.question, context: steps.passages.output}}
  output: steps.answer.output
"""

ROTATION = ("model", "prompt", "prompt", "tool", "kb", "chain", "monitor")


def write_project(root: Path, specs: int, environments: int = 3) -> Path:
    """Write a project of ``specs`` spec documents (plus the Project) under ``root/specs``; return that folder."""
    folder = root / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    envs = "\n".join(f"    - {{name: env{e}, namespace: synthetic-env{e}}}" for e in range(environments))
    (folder / "project.yaml").write_text(PROJECT.format(environments=envs, digest="a" * 64))
    counts = dict.fromkeys(ROTATION, 0)
    for index in range(specs):
        kind = ROTATION[index % len(ROTATION)]
        i = counts[kind]
        counts[kind] += 1
        if kind == "model":
            text = MODEL.format(i=i)
        elif kind == "prompt":
            text = PROMPT.format(i=i, model=i // 2)
        elif kind == "tool":
            text = TOOL.format(i=i)
        elif kind == "kb":
            text = KNOWLEDGE_BASE.format(i=i)
        elif kind == "monitor":
            text = MONITOR.format(i=i, model=i)
        else:
            text = CHAIN.format(i=i, kb=i, tool=i, prompt=2 * i)
        subfolder = folder / f"{kind}s"
        subfolder.mkdir(exist_ok=True)
        (subfolder / f"{kind}-{i}.yaml").write_text(text)
    return folder
