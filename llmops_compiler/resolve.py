"""Spec objects → one checked graph: the Project, each environment's view of every spec, the dependencies.

Checks what needs more than one spec: exactly one Project, unique names per kind, environment overrides
naming real environments, references between specs (with "did you mean"), namespaces, and the actions
monitors ask for. The graph is a plain value that targets, ``graph`` and ``diff`` share.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel

from .diagnostics import Diagnostic, Position, did_you_mean
from .load import YamlPath
from .specs import (
    ChainSpec,
    DatasetSpec,
    KnowledgeBaseSpec,
    ModelSpec,
    MonitorSpec,
    ProjectSpec,
    PromptSpec,
    RolloutPolicySpec,
    RolloutStateSpec,
    ToolSpec,
)
from .specs.model import is_dataset_name
from .specs.project import Environment, NodePool
from .specs.rollout import EnvironmentState
from .validate import InvalidSpec, SpecObject

SpecT = TypeVar("SpecT", bound=BaseModel)
NodeId = tuple[str, str]


@dataclass(frozen=True)
class ResolvedSpec(Generic[SpecT]):
    """A spec as one environment sees it (overrides applied), with its identity and provenance."""

    kind: str
    name: str
    file: str
    labels: dict[str, str]
    spec: SpecT
    spec_hash: str
    position: Position  # of `metadata.name`, where problems with what the spec compiles to are reported

    @property
    def source(self) -> str:
        return f"{self.file} ({self.kind} {self.name})"


@dataclass(frozen=True)
class EnvironmentView:
    environment: Environment
    project: ResolvedSpec[ProjectSpec]
    specs: dict[str, dict[str, ResolvedSpec[Any]]]

    @property
    def name(self) -> str:
        return self.environment.name

    @property
    def namespace(self) -> str:
        return self.environment.namespace

    def of_kind(self, kind: str) -> list[ResolvedSpec[Any]]:
        """The specs of one kind, ordered by name."""
        return [self.specs.get(kind, {})[name] for name in sorted(self.specs.get(kind, {}))]

    def get(self, kind: str, name: str) -> ResolvedSpec[Any] | None:
        return self.specs.get(kind, {}).get(name)

    def models(self) -> list[ResolvedSpec[ModelSpec]]:
        return self.of_kind("Model")

    def prompts(self) -> list[ResolvedSpec[PromptSpec]]:
        return self.of_kind("Prompt")

    def chains(self) -> list[ResolvedSpec[ChainSpec]]:
        return self.of_kind("Chain")

    def tools(self) -> list[ResolvedSpec[ToolSpec]]:
        return self.of_kind("Tool")

    def knowledge_bases(self) -> list[ResolvedSpec[KnowledgeBaseSpec]]:
        return self.of_kind("KnowledgeBase")

    def monitors(self) -> list[ResolvedSpec[MonitorSpec]]:
        return self.of_kind("Monitor")

    def rollout_policies(self) -> list[ResolvedSpec[RolloutPolicySpec]]:
        return self.of_kind("RolloutPolicy")

    @functools.cached_property
    def _retrieved_for_model(self) -> dict[str, list[str]]:
        """Model → the KnowledgeBases the chains using its prompts retrieve from (once per view)."""
        found: dict[str, list[str]] = {}
        for chain in self.chains():
            models = {prompt.spec.model for step in chain.spec.steps if step.prompt
                      for prompt in [self.get("Prompt", step.prompt)] if prompt is not None}
            retrieved = [step.retrieve for step in chain.spec.steps if step.retrieve]
            for model in models:
                found.setdefault(model, []).extend(retrieved)
        return found

    def embedding_model_for(self, model: str) -> str | None:
        """The embedding model of the KnowledgeBase that chains using ``model``'s prompts retrieve from (the first
        by name when several), or None."""
        for name in sorted(self._retrieved_for_model.get(model, [])):
            knowledge_base = self.get("KnowledgeBase", name)
            if knowledge_base is not None:
                return str(knowledge_base.spec.embedding.model)
        return None

    @functools.cached_property
    def collection_owners(self) -> dict[tuple[str, str], str]:
        """(vector-store URI, collection) → the first KnowledgeBase by name that fills it (once per view)."""
        owners: dict[tuple[str, str], str] = {}
        for knowledge_base in self.knowledge_bases():
            store = knowledge_base.spec.vector_store
            key = (store.uri, store.collection)
            owners[key] = min(owners.get(key, knowledge_base.name), knowledge_base.name)
        return owners

    def datasets(self) -> list[ResolvedSpec[DatasetSpec]]:
        return self.of_kind("Dataset")

    def rollout_state(self, policy: str) -> EnvironmentState:
        """Where this environment's rollout of ``policy`` stands (idle with nothing deployed when unrecorded)."""
        state = self.get("RolloutState", policy)
        if state is None:
            return EnvironmentState()
        return cast(RolloutStateSpec, state.spec).environments.get(self.name, EnvironmentState())


@dataclass(frozen=True)
class ProjectGraph:
    """Everything the targets need: the Project, one view per environment, and the dependency edges."""

    project: ResolvedSpec[ProjectSpec]
    environments: list[EnvironmentView]
    nodes: list[NodeId]
    edges: list[tuple[NodeId, NodeId]] = field(default_factory=list)


def spec_hash(kind: str, name: str, raw: dict[str, Any]) -> str:
    """A short, stable hash of a spec's content as one environment sees it."""
    text = json.dumps({"kind": kind, "name": name, "spec": raw}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def references(kind: str, spec: BaseModel, name: str = "") -> Iterator[tuple[YamlPath, str, str]]:
    """Every (path, target kind, target name) reference a spec makes (a RolloutState's policy only with
    ``name``: it refers to the policy of its own name)."""
    if isinstance(spec, PromptSpec | MonitorSpec | RolloutPolicySpec):
        yield ("model",), "Model", spec.model
    elif isinstance(spec, RolloutStateSpec) and name:  # its own check says when the policy is missing
        yield (), "RolloutPolicy", name
    if isinstance(spec, ModelSpec):
        for block in ("tuning", "evaluation"):
            value = getattr(getattr(spec, block), "dataset", None)
            if value is not None and is_dataset_name(value):
                yield (block, "dataset"), "Dataset", value
    if isinstance(spec, DatasetSpec):
        for index, source in enumerate(spec.sources):
            if source.dataset is not None:
                yield ("sources", index, "dataset"), "Dataset", source.dataset
    if isinstance(spec, MonitorSpec):
        for index, check in enumerate(spec.drift):
            if check.reference_dataset is not None:
                yield ("drift", index, "referenceDataset"), "Dataset", check.reference_dataset
    elif isinstance(spec, ChainSpec):
        for index, step in enumerate(spec.steps):
            for attribute, target_kind in (("prompt", "Prompt"), ("retrieve", "KnowledgeBase"), ("tool", "Tool")):
                target = getattr(step, attribute)
                if target is not None:
                    yield ("steps", index, attribute), target_kind, target


class _Resolver:
    def __init__(self, objects: Sequence[SpecObject | InvalidSpec], complete: bool = True,
                 stale_steps: bool = False) -> None:
        self.all_objects = objects
        self.stale_steps = stale_steps
        # False when a spec file could not be read or parsed: a reference to a spec it may hold is then not
        # reported as dangling, nor a missing Project (the file's own error says what to fix).
        self.complete = complete
        self.objects = [spec_object for spec_object in objects if isinstance(spec_object, SpecObject)]
        self.problems: list[Diagnostic] = []
        self.by_kind: dict[str, dict[str, SpecObject]] = {}
        # Every name defined, valid or not: a reference to a spec that is there but invalid is not reported
        # again as dangling (the spec's own errors say what is wrong).
        self.defined: dict[str, dict[str, SpecObject | InvalidSpec]] = {}

    def report(self, position: Position, code: str, message: str, hint: str = "", warning: bool = False) -> None:
        self.problems.append(Diagnostic(position, code, message, hint, "warning" if warning else "error"))

    def index(self) -> None:
        for spec_object in self.all_objects:
            same_kind = self.defined.setdefault(spec_object.kind, {})
            first = same_kind.get(spec_object.name)
            if first is not None:
                self.report(spec_object.name_position(), "LLM301",
                            f"{spec_object.kind} `{spec_object.name}` is already defined at {first.name_position()}",
                            "names are unique per kind: rename one of them")
                continue
            same_kind[spec_object.name] = spec_object
            if isinstance(spec_object, SpecObject):
                self.by_kind.setdefault(spec_object.kind, {})[spec_object.name] = spec_object

    def project(self, specs_root: str) -> SpecObject | None:
        """The one valid Project, or None: there is none (said here) or it is invalid (its errors say why)."""
        projects = sorted(self.defined.get("Project", {}).values(), key=lambda o: o.name_position())
        if not projects and not self.complete:
            return None
        if not projects:
            self.report(Position(specs_root), "LLM302", "no Project spec found",
                        "add one `kind: Project` document with the repository and environments")
            return None
        for extra in projects[1:]:
            self.report(extra.name_position(), "LLM302",
                        f"a second Project `{extra.name}` (the first is at {projects[0].name_position()})",
                        "a spec folder holds exactly one Project")
        return projects[0] if isinstance(projects[0], SpecObject) else None

    def check_environment_names(self, environments: list[str]) -> None:
        for spec_object in self.all_objects:  # invalid ones too: an override of an unknown environment may be why
            overrides = spec_object.document.data.get("environments") if isinstance(spec_object.document.data, dict) \
                else None
            for environment in overrides if isinstance(overrides, dict) else {}:
                if isinstance(environment, str) and environment not in environments:
                    self.report(spec_object.document.position(("environments", environment), at_key=True), "LLM303",
                                f"override for environment `{environment}`, which the Project does not define",
                                did_you_mean(environment, environments))

    def check_references(self, view: EnvironmentView) -> None:
        for spec_object in self.objects:
            if spec_object.kind == "Project":
                continue
            spec = spec_object.for_environment(view.name)
            locator = spec_object.locator(view.name)
            for path, target_kind, target in references(spec_object.kind, spec):
                if not self.complete:
                    break
                if view.get(target_kind, target) is None and target not in self.defined.get(target_kind, {}):
                    known = self.defined.get(target_kind, {})
                    self.report(locator.at(path), "LLM310",
                                f"{spec_object.kind} `{spec_object.name}` refers to {target_kind} `{target}`, "
                                "which no spec defines",
                                did_you_mean(target, known) or f"define a {target_kind} named `{target}`")
            self.check_kind_rules(spec_object, spec, view)

    def check_kind_rules(self, spec_object: SpecObject, spec: BaseModel, view: EnvironmentView) -> None:
        locator = spec_object.locator(view.name)
        namespaces = [environment.namespace for environment in view.project.spec.environments]
        if isinstance(spec, ModelSpec) and spec.serving and spec.serving.service.namespace:
            namespace = spec.serving.service.namespace
            if namespace not in namespaces:
                self.report(locator.at(("serving", "service", "namespace")), "LLM311",
                            f"namespace `{namespace}` is not the namespace of any environment",
                            did_you_mean(namespace, namespaces) or "leave it out to use the environment's namespace")
        if isinstance(spec, RolloutPolicySpec):
            model = view.get("Model", spec.model)
            if model is not None and cast(ModelSpec, model.spec).serving is None:
                self.report(locator.at(("model",)), "LLM312",
                            f"RolloutPolicy `{spec_object.name}` targets Model `{spec.model}`, which has no `serving`",
                            "add `serving: {service: {name: ..., port: ...}}` to the Model")
        if isinstance(spec, MonitorSpec):
            self.check_monitor_actions(spec_object, spec, view)
            self.check_latency_buckets(spec_object, spec, view)
            self.check_evaluation_embedding(spec_object, spec, view)
            self.check_follow_stable(spec_object, spec, view)
        if isinstance(spec, ChainSpec):
            self.check_chain_prompt_inputs(spec_object, spec, view)
            self.check_chain_tool_arguments(spec_object, spec, view)
        if isinstance(spec, ModelSpec) and spec.serving is not None and spec.serving.deployment is not None:
            deployment = spec.serving.deployment
            if spec.serving.service.namespace not in (None, view.namespace):
                self.report(locator.at(("serving", "service", "namespace")), "LLM321",
                            "the compiler runs the servers in the environment's namespace: a Service in namespace "
                            f"`{spec.serving.service.namespace}` would select no pod",
                            "remove `namespace`, or run the servers yourself (remove `deployment`)")
            self.check_fits_node_pool(locator.at(("serving", "deployment", "resources", "requests"), at_key=True),
                                      "the serving pods", deployment.resources.requests, deployment.node_selector,
                                      view.project.spec.node_pools)
        if isinstance(spec, RolloutPolicySpec):
            others = sorted(policy.name for policy in view.rollout_policies()
                            if policy.spec.model == spec.model and policy.name != spec_object.name)
            if others and spec_object.name > others[0]:
                self.report(locator.at(("model",)), "LLM320",
                            f"Model `{spec.model}` already has RolloutPolicy `{others[0]}`: a model rolls out one way",
                            "merge the two policies, or use environment overrides")
        if isinstance(spec, ModelSpec) and spec.tuning is not None:
            self.check_fits_node_pool(locator.at(("tuning", "resources", "requests"), at_key=True),
                                      "the tuning pods", spec.tuning.resources.requests, spec.tuning.node_selector,
                                      view.project.spec.node_pools)
        if isinstance(spec, RolloutStateSpec):
            self.check_rollout_state(spec_object, spec, view)
        if isinstance(spec, KnowledgeBaseSpec):
            self.check_collection_owner(spec_object, spec, view)

    def check_collection_owner(self, spec_object: SpecObject, spec: KnowledgeBaseSpec, view: EnvironmentView) -> None:
        """One KnowledgeBase per vector-store collection: each one's full re-sync deletes the chunks of documents
        not in its own bucket, so two sharing a collection would delete each other's chunks."""
        store = spec.vector_store
        owner = view.collection_owners.get((store.uri, store.collection), spec_object.name)
        if owner != spec_object.name:
            self.report(spec_object.locator(view.name).at(("vectorStore", "collection")), "LLM323",
                        f"KnowledgeBase `{owner}` already fills collection `{store.collection}` at `{store.uri}`: "
                        "each re-sync deletes the chunks of documents outside its own bucket, so the two would "
                        "delete each other's", "give this KnowledgeBase a collection of its own")

    def check_follow_stable(self, spec_object: SpecObject, spec: MonitorSpec, view: EnvironmentView) -> None:
        """A reference that follows the stable version needs a served, tuned model (register records the data)."""
        model = view.get("Model", spec.model)
        if model is None:
            return
        for index, check in enumerate(spec.drift):
            if check.follow_stable and (model.spec.serving is None or model.spec.tuning is None):
                self.report(spec_object.locator(view.name).at(("drift", index, "followStable")), "LLM283",
                            f"`followStable` needs Model `{spec.model}` to be served and tuned: the stable version's "
                            "training data is what `register` records", "use `reference:` instead")

    def check_evaluation_embedding(self, spec_object: SpecObject, spec: MonitorSpec, view: EnvironmentView) -> None:
        """Embedding metrics need a model: the evaluation's own, or the retrieving KnowledgeBase's."""
        from .specs.monitor import QUALITY_METRICS

        embedded = [index for index, check in enumerate(spec.quality)
                    if (check.method or QUALITY_METRICS.get(check.metric, ("judge",))[0]) == "embedding"]
        if self._invalid_retrieval:  # an invalid chain or KnowledgeBase may be the retrieving one: its errors say it
            return
        if embedded and spec.evaluation is not None and spec.evaluation.embedding_model is None \
                and view.embedding_model_for(spec.model) is None:
            self.report(spec_object.locator(view.name).at(("quality", embedded[0], "metric")), "LLM322",
                        f"`{spec.quality[embedded[0]].metric}` is measured with embeddings, but no model is given and "
                        f"no chain of Model `{spec.model}` retrieves from a KnowledgeBase",
                        "add `embeddingModel:` under evaluation")

    @functools.cached_property
    def _invalid_retrieval(self) -> bool:
        """Whether some Chain or KnowledgeBase is defined but invalid (asked once per run)."""
        return any(not isinstance(defined, SpecObject) for kind in ("Chain", "KnowledgeBase")
                   for defined in self.defined.get(kind, {}).values())

    def check_dataset_cycles(self) -> None:
        edges: dict[str, list[str]] = {}
        for spec_object in self.objects:
            if isinstance(spec_object.spec, DatasetSpec):
                edges[spec_object.name] = [source.dataset for source in spec_object.spec.sources if source.dataset]
        from .checks import find_cycle

        cycle = find_cycle(edges)
        if cycle:
            first = self.by_kind["Dataset"][cycle[0]]
            index = next(i for i, source in enumerate(cast(DatasetSpec, first.spec).sources)
                         if source.dataset == cycle[1])
            self.report(first.locator().at(("sources", index, "dataset")), "LLM282",
                        "Datasets read each other in a cycle: " + " → ".join(cycle),
                        "a Dataset may build on others, never on itself")

    def check_latency_buckets(self, spec_object: SpecObject, spec: MonitorSpec, view: EnvironmentView) -> None:
        """A latency SLO's threshold must be a bucket bound: Prometheus has no series for any other bound, so the
        SLO would record nothing and never alert."""
        buckets = view.project.spec.metrics.latency_buckets
        for index, slo in enumerate(spec.slos):
            if slo.latency_threshold is not None and slo.latency_threshold not in buckets:
                shown = ", ".join(f"{bound:g}" for bound in buckets)
                self.report(spec_object.locator(view.name).at(("slos", index, "latencyThreshold")), "LLM316",
                            f"latency threshold {slo.latency_threshold:g}s is not a bucket bound of the duration "
                            f"histogram ({shown}): the SLO would record nothing and never alert",
                            "use one of the bounds, or declare the serving app's buckets in the Project's "
                            "`metrics.latencyBuckets`")

    def check_chain_tool_arguments(self, spec_object: SpecObject, spec: ChainSpec, view: EnvironmentView) -> None:
        """A tool step sets every parameter the Tool's JSON Schema requires, and only parameters it declares
        (when it forbids others)."""
        locator = spec_object.locator(view.name)
        for index, step in enumerate(spec.steps):
            tool = view.get("Tool", step.tool) if step.tool else None
            if tool is None:
                continue
            parameters = cast(ToolSpec, tool.spec).parameters
            properties = parameters.get("properties", {}) if isinstance(parameters.get("properties"), dict) else {}
            required = [name for name in parameters.get("required", []) if isinstance(name, str)] \
                if isinstance(parameters.get("required"), list) else []
            closed = parameters.get("additionalProperties") is False
            misspelt: set[str] = set()
            for variable in step.inputs:
                if closed and variable not in properties:
                    self.report(locator.at(("steps", index, "inputs", variable), at_key=True), "LLM317",
                                f"step `{step.name}` sets `{variable}`, which Tool `{step.tool}` does not take",
                                did_you_mean(variable, properties) or "remove it")
                    misspelt.update(difflib.get_close_matches(variable, list(properties), n=1, cutoff=0.6))
            for name in required:
                if name not in step.inputs and name not in misspelt:
                    self.report(locator.at(("steps", index, "inputs") if step.inputs else ("steps", index)),
                                "LLM317",
                                f"step `{step.name}` does not set `{name}`, a required parameter of Tool `{step.tool}`",
                                f"add `{name}: input.<name>` or `{name}: steps.<step>.output` under inputs")

    def check_fits_node_pool(self, position: Position, workload: str, requests: dict[str, str],
                             node_selector: dict[str, str], pools: list[NodePool]) -> None:
        """A workload whose node selector names a declared node type must fit one node of it."""
        from .quantities import quantity_value

        for pool in pools:
            if not pool.node_selector.items() <= node_selector.items():
                continue
            for resource, amount in sorted(requests.items()):
                available = pool.allocatable.get(resource, "0")
                if quantity_value(amount) > quantity_value(available):
                    self.report(position, "LLM318",
                                f"{workload} request {resource} {amount}, but a `{pool.name}` node offers "
                                f"{available}: they would never be scheduled",
                                "request less, or select a larger node type")

    def check_rollout_state(self, spec_object: SpecObject, spec: RolloutStateSpec, view: EnvironmentView) -> None:
        """The state belongs to a RolloutPolicy, names real environments, and sits on one of the policy's steps."""
        locator = spec_object.locator(view.name)
        policy = view.get("RolloutPolicy", spec_object.name)
        if policy is None:
            if self.complete and spec_object.name not in self.defined.get("RolloutPolicy", {}):
                self.report(spec_object.name_position(), "LLM319",
                            f"RolloutState `{spec_object.name}` has no RolloutPolicy of the same name",
                            did_you_mean(spec_object.name, self.defined.get("RolloutPolicy", {}))
                            or "name the state after the policy it records")
            return
        environments = [environment.name for environment in view.project.spec.environments]
        steps = cast(RolloutPolicySpec, policy.spec).steps
        for environment, state in spec.environments.items():
            if environment not in environments:
                self.report(locator.at(("environments", environment), at_key=True), "LLM319",
                            f"state for environment `{environment}`, which the Project does not define",
                            did_you_mean(environment, environments))
            elif environment == view.name and state.step >= max(len(steps), 1):
                self.report(locator.at(("environments", environment, "step")), "LLM319",
                            f"step {state.step} does not exist: the policy has steps 0 to {max(len(steps), 1) - 1}",
                            "the promote step writes this file; restore it from git, or roll the candidate back "
                            f"with `llmops rollout abort {cast(RolloutPolicySpec, policy.spec).model} --env "
                            f"{environment}`", warning=self.stale_steps)

    def check_monitor_actions(self, spec_object: SpecObject, spec: MonitorSpec, view: EnvironmentView) -> None:
        locator = spec_object.locator(view.name)
        model = view.get("Model", spec.model)
        if model is None:
            return
        # An invalid RolloutPolicy may well be the one for this model: its own errors come first.
        rolled_out = any(policy.spec.model == spec.model for policy in view.rollout_policies()) or any(
            isinstance(policy, InvalidSpec) for policy in self.defined.get("RolloutPolicy", {}).values())
        actions: list[tuple[YamlPath, str]] = [(("slos", i, "action"), slo.action) for i, slo in enumerate(spec.slos)]
        actions += [(("drift", i, "action"), check.action) for i, check in enumerate(spec.drift)]
        actions += [(("quality", i, "action"), check.action) for i, check in enumerate(spec.quality)]
        for path, action in actions:
            if action == "rollback" and not rolled_out:
                self.report(locator.at(path), "LLM313",
                            f"action `rollback` on Model `{spec.model}`, which no RolloutPolicy rolls out",
                            "add a RolloutPolicy for the model, or use `notify`")
            if action == "retrain" and cast(ModelSpec, model.spec).tuning is None:
                self.report(locator.at(path), "LLM314",
                            f"action `retrain` on Model `{spec.model}`, which has no `tuning`",
                            "add `tuning:` to the Model, or use `notify`")

    def check_chain_prompt_inputs(self, spec_object: SpecObject, spec: ChainSpec, view: EnvironmentView) -> None:
        locator = spec_object.locator(view.name)
        for index, step in enumerate(spec.steps):
            prompt = view.get("Prompt", step.prompt) if step.prompt else None
            if prompt is None:
                continue
            declared = {item.name: item for item in cast(PromptSpec, prompt.spec).inputs}
            misspelt: set[str] = set()  # `questoin` for `question` is one mistake, not two
            for variable in step.inputs:
                if variable not in declared:
                    self.report(locator.at(("steps", index, "inputs", variable), at_key=True), "LLM315",
                                f"step `{step.name}` sets `{variable}`, which Prompt `{step.prompt}` does not declare",
                                did_you_mean(variable, declared))
                    misspelt.update(difflib.get_close_matches(variable, declared, n=1, cutoff=0.6))
            for name, item in declared.items():
                if item.required and name not in step.inputs and name not in misspelt:
                    self.report(locator.at(("steps", index, "inputs")), "LLM315",
                                f"step `{step.name}` does not set `{name}`, a required input of Prompt `{step.prompt}`",
                                f"add `{name}: input.<name>` or `{name}: steps.<step>.output` under inputs")

    def view(self, project_object: SpecObject, environment: Environment) -> EnvironmentView:
        def resolved(spec_object: SpecObject) -> ResolvedSpec[Any]:
            raw = spec_object.raw_for_environment(environment.name)
            return ResolvedSpec(
                kind=spec_object.kind,
                name=spec_object.name,
                file=spec_object.file,
                labels=spec_object.labels,
                spec=spec_object.for_environment(environment.name),
                spec_hash=spec_hash(spec_object.kind, spec_object.name, raw),
                position=spec_object.name_position(),
            )

        specs = {
            kind: {name: resolved(spec_object) for name, spec_object in sorted(objects.items())}
            for kind, objects in sorted(self.by_kind.items())
        }
        return EnvironmentView(environment, resolved(project_object), specs)


def resolve(
    objects: Sequence[SpecObject | InvalidSpec], specs_root: str = "specs", complete: bool = True,
    stale_steps: bool = False,
) -> tuple[ProjectGraph | None, list[Diagnostic]]:
    """The graph of the valid specs and the problems between specs; invalid ones only count as defined.

    ``complete`` is False when some spec file could not be read or parsed: references that file might satisfy
    are then not reported as dangling. With ``stale_steps``, a rollout state on a step the policy does not have
    is a warning (see :func:`.api.resolve_specs`)."""
    resolver = _Resolver(objects, complete, stale_steps)
    resolver.index()
    project_object = resolver.project(specs_root)
    if project_object is None:
        return None, resolver.problems
    base_project = cast(ProjectSpec, project_object.spec)
    environments = [environment.name for environment in base_project.environments]
    resolver.check_environment_names(environments)
    resolver.check_dataset_cycles()
    views = []
    for environment in base_project.environments:
        view = resolver.view(project_object, environment)
        resolver.check_references(view)
        views.append(view)
    nodes = sorted((spec_object.kind, spec_object.name) for spec_object in resolver.objects)
    edges = sorted({
        ((spec_object.kind, spec_object.name), (target_kind, target))
        for spec_object in resolver.objects
        for _, target_kind, target in references(spec_object.kind, spec_object.spec, spec_object.name)
    })
    project = views[0].project if views else resolver.view(project_object, base_project.environments[0]).project
    return ProjectGraph(project, views, nodes, edges), resolver.problems
