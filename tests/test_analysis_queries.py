"""Analysis metric queries are checked at compile time the way Prometheus parses them: promql-parser (a port of
Prometheus's parser) and promtool agree on what is valid PromQL, and placeholders are the ones promote fills."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from monitoring_support import run_tool

from llmops_compiler.rollout import ANALYSIS_PLACEHOLDERS, analysis_query_problem, fill_analysis_query

QUERIES = [
    'sum(rate(llmops_requests_total{model="{{model}}", track="{{track}}"}[{{interval}}]))',
    "histogram_quantile(0.95, sum by (le) (rate(x_bucket{version=\"{{ version }}\"}[{{interval}}])))",
    '(sum(increase(e{namespace="{{namespace}}"}[{{interval}}])) or vector(0)) / sum(increase(r[{{interval}}]))',
    "sum(rate(x[{{interval}}])",  # unclosed parenthesis
    "rate(x[5m]) by (job)",  # `by` after a function that is not an aggregation
    "sum(rate(x{a=\"b\"}[5m]])",  # bracket closed twice
    "1 +",  # no right operand
    "x offset",  # offset without a duration
    'x{a=~"("}',  # a label regex that does not compile
]


def _promtool_accepts(expression: str, folder: Path) -> bool:
    rules = folder / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r:x", "expr": expression}]}]}))
    return run_tool("promtool", "check", "rules", str(rules)).returncode == 0


@pytest.mark.parametrize(("index", "query"), list(enumerate(QUERIES)))
def test_the_compile_time_check_agrees_with_promtool(index: int, query: str, tmp_path: Path) -> None:
    filled = fill_analysis_query(query, {"model": "m", "version": "7", "track": "candidate",
                                         "namespace": "ns", "interval": "5m"})
    assert "{{" not in filled
    valid = index < 3  # the first three are valid, the others are not
    assert _promtool_accepts(filled, tmp_path) is valid
    assert (analysis_query_problem(query, "5m") is None) is valid


def test_an_unknown_placeholder_is_named_with_the_ones_promote_fills() -> None:
    problem = analysis_query_problem("rate(x[{{window}}])", "5m")
    assert problem is not None and "`{{window}}`" in problem
    assert all(f"`{{{{{name}}}}}`" in problem for name in ANALYSIS_PLACEHOLDERS)
    assert fill_analysis_query("x{{window}}{{ model }}", {"model": "m"}) == "x{{window}}m"
