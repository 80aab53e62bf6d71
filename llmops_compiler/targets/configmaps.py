"""ConfigMaps the serving app reads: content-hashed prompts, resolved chains, the tool registry."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from .. import conventions
from ..checks import chain_dependencies
from ..resolve import EnvironmentView, ResolvedSpec
from ..serialize import dump_yaml
from ..specs import ChainSpec, KnowledgeBaseSpec, ModelSpec, PromptSpec, ToolSpec
from .base import Body, Resource, metadata, resource


def content_hash(data: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key].encode() + b"\0")
    return digest.hexdigest()[:10]


def prompt_document(view: EnvironmentView, prompt: ResolvedSpec[PromptSpec]) -> dict[str, Any]:
    """What a consumer needs to render a prompt, and where MLflow's prompt registry keeps it."""
    spec = prompt.spec
    document: dict[str, Any] = {
        "name": prompt.name,
        "version": spec.version,
        "model": spec.model,
        "mlflowUri": f"prompts:/{prompt.name}@{view.name}",
        "inputs": [item.model_dump(by_alias=True, exclude_defaults=True) for item in spec.inputs],
    }
    if spec.system is not None:
        document["system"] = spec.system
    document["template"] = spec.template
    if spec.examples:
        document["examples"] = [example.model_dump(by_alias=True) for example in spec.examples]
    # What the prompt registry versions on: everything a consumer renders, not only the template.
    document["contentHash"] = content_hash({"prompt": dump_yaml(document)})
    return document


def prompt_configmap_name(view: EnvironmentView, prompt: ResolvedSpec[PromptSpec]) -> str:
    return conventions.prompt_configmap_name(prompt.name, content_hash(prompt_data(view, prompt)))


def prompt_data(view: EnvironmentView, prompt: ResolvedSpec[PromptSpec]) -> dict[str, str]:
    return {f"{prompt.name}.yaml": dump_yaml(prompt_document(view, prompt))}


def prompt_configmaps(view: EnvironmentView) -> list[Resource]:
    resources = []
    for prompt in view.prompts():
        data = prompt_data(view, prompt)
        digest = content_hash(data)
        body: Body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(
                view, conventions.prompt_configmap_name(prompt.name, digest), prompt, component="prompt",
                extra_annotations={conventions.ANNOTATION_CONTENT_HASH: digest},
            ),
            "immutable": True,
            "data": data,
        }
        resources.append(resource(view, body, prompt.source))
    return resources


def _topological(spec: ChainSpec) -> list[str]:
    """Step names in an order where every step comes after the steps it reads (ties: spec order)."""
    dependencies = chain_dependencies(spec)
    order: list[str] = []
    remaining = [step.name for step in spec.steps]
    while remaining:
        ready = next(name for name in remaining if all(dep in order for dep in dependencies[name]))
        order.append(ready)
        remaining.remove(ready)
    return order


def _chain_step(view: EnvironmentView, step: Any) -> dict[str, Any]:
    if step.prompt is not None:
        prompt = cast(ResolvedSpec[PromptSpec], view.get("Prompt", step.prompt))
        model = cast(ResolvedSpec[ModelSpec] | None, view.get("Model", prompt.spec.model))
        entry: dict[str, Any] = {
            "name": step.name,
            "type": "prompt",
            "prompt": step.prompt,
            "configMap": prompt_configmap_name(view, prompt),
            "model": prompt.spec.model,
        }
        if model is not None and model.spec.serving is not None:
            service = model.spec.serving.service
            entry["endpoint"] = f"http://{service.name}.{service.namespace or view.namespace}.svc:{service.port}"
    elif step.retrieve is not None:
        knowledge_base = cast(ResolvedSpec[KnowledgeBaseSpec], view.get("KnowledgeBase", step.retrieve))
        entry = {
            "name": step.name,
            "type": "retrieve",
            "knowledgeBase": step.retrieve,
            "vectorStore": knowledge_base.spec.vector_store.uri,
            "collection": knowledge_base.spec.vector_store.collection,
            "embeddingModel": knowledge_base.spec.embedding.model,
            "topK": step.top_k or 4,
        }
    else:
        entry = {"name": step.name, "type": "tool", "tool": step.tool, "registry": conventions.TOOL_REGISTRY_CONFIGMAP}
    entry["inputs"] = dict(sorted(step.inputs.items()))
    return entry


def chain_configmaps(view: EnvironmentView) -> list[Resource]:
    resources = []
    for chain in view.chains():
        spec = chain.spec
        steps = {step.name: step for step in spec.steps}
        document = {
            "name": chain.name,
            "inputs": list(spec.inputs),
            "output": spec.output,
            "steps": [_chain_step(view, steps[name]) for name in _topological(spec)],
        }
        data = {"chain.yaml": dump_yaml(document)}
        body: Body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(
                view, conventions.chain_configmap_name(chain.name), chain, component="chain",
                extra_annotations={conventions.ANNOTATION_CONTENT_HASH: content_hash(data)},
            ),
            "data": data,
        }
        resources.append(resource(view, body, chain.source))
    return resources


def _tool_entry(tool: ResolvedSpec[ToolSpec]) -> dict[str, Any]:
    spec = tool.spec
    entry: dict[str, Any] = {"name": tool.name, "description": spec.description, "kind": spec.kind}
    if spec.endpoint is not None:
        entry["endpoint"] = spec.endpoint
        entry["method"] = spec.method
    entry["timeout"] = spec.timeout
    entry["parameters"] = spec.parameters
    if spec.output is not None:
        entry["output"] = spec.output
    if spec.auth is not None:
        entry["auth"] = {
            "secretName": spec.auth.secret_ref.name,
            "secretKey": spec.auth.secret_ref.key,
            "header": spec.auth.header,
            "scheme": spec.auth.scheme,
        }
    return entry


def tool_registry(view: EnvironmentView) -> list[Resource]:
    tools = view.tools()
    if not tools:
        return []
    data = {"tools.yaml": dump_yaml({"tools": [_tool_entry(tool) for tool in tools]})}
    body: Body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            view, conventions.TOOL_REGISTRY_CONFIGMAP, component="tool-registry",
            extra_annotations={conventions.ANNOTATION_CONTENT_HASH: content_hash(data)},
        ),
        "data": data,
    }
    return [resource(view, body, ", ".join(tool.file for tool in tools))]
