"""The dependency graph of the specs, as text, Graphviz DOT or Mermaid."""

from __future__ import annotations

from .resolve import NodeId, ProjectGraph


def _label(node: NodeId) -> str:
    return f"{node[0]}/{node[1]}"


def _identifier(node: NodeId) -> str:
    return f"{node[0]}_{node[1]}".replace("-", "_")


def render_text(graph: ProjectGraph) -> str:
    outgoing: dict[NodeId, list[NodeId]] = {node: [] for node in graph.nodes}
    for source, target in graph.edges:
        outgoing.setdefault(source, []).append(target)
    lines = []
    for node in graph.nodes:
        lines.append(_label(node))
        lines.extend(f"  └─ uses {_label(target)}" for target in outgoing[node])
    return "\n".join(lines)


def render_dot(graph: ProjectGraph) -> str:
    lines = ["digraph llmops {", "  rankdir=LR;", "  node [shape=box];"]
    lines += [f'  "{_label(node)}";' for node in graph.nodes]
    lines += [f'  "{_label(source)}" -> "{_label(target)}";' for source, target in graph.edges]
    lines.append("}")
    return "\n".join(lines)


def render_mermaid(graph: ProjectGraph) -> str:
    lines = ["flowchart LR"]
    lines += [f'  {_identifier(node)}["{_label(node)}"]' for node in graph.nodes]
    lines += [f"  {_identifier(source)} --> {_identifier(target)}" for source, target in graph.edges]
    return "\n".join(lines)


RENDERERS = {"text": render_text, "dot": render_dot, "mermaid": render_mermaid}
