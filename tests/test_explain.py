"""`llmops explain` and the field descriptions it and `llmops schema` show, read from attribute docstrings."""

from __future__ import annotations

import typing

from click.testing import Result
from pydantic import BaseModel

from llmops_compiler.explain import explain
from llmops_compiler.schema import _models
from llmops_compiler.specs import SPEC_MODELS
from llmops_compiler.specs.common import StrictModel
from llmops_compiler.specs.docs import field_description

Cli = typing.Callable[..., Result]


def _every_model() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {}
    for root in SPEC_MODELS.values():
        models.update(_models(root))
    return models


def test_every_field_of_every_spec_model_has_a_description() -> None:
    missing = [f"{name}.{field}" for name, model in _every_model().items()
               for field, info in model.model_fields.items() if not field_description(model, field, info)]
    assert missing == []


def test_a_description_is_the_docstring_under_the_field_in_the_class_that_declares_it() -> None:
    class Base(StrictModel):
        size: int = 1
        """Size of the thing, in items."""

    class Derived(Base):
        colour: str = "red"
        """Its colour."""
        size: int = 2  # redeclared without a docstring: the field has none here

    assert field_description(Base, "size", Base.model_fields["size"]) == "Size of the thing, in items."
    assert field_description(Derived, "colour", Derived.model_fields["colour"]) == "Its colour."
    assert field_description(Derived, "size", Derived.model_fields["size"]) is None


def test_explain_a_kind_lists_its_fields_with_their_descriptions() -> None:
    text = explain("Dataset")
    assert text.startswith("KIND:     Dataset\n")
    assert "  output <string> (required)\n    `s3://bucket/prefix/` the versions are written under." in text
    assert "  curation <Curation>\n    How records are cleaned and split." in text


def test_explain_a_nested_field_gives_its_description_once_and_its_fields() -> None:
    text = explain("Dataset.curation")
    assert text.count("How records are cleaned and split.") == 1
    assert "FIELD:    curation <Curation>" in text
    assert "\n  keep <Keep>" in text


def test_explain_a_leaf_field_shows_its_type_and_description(cli: Cli) -> None:
    result = cli("explain", "Model.registeredModel")
    assert result.exit_code == 0, result.output
    assert "FIELD:    registeredModel <string>" in result.output
    assert "Registered-model name in MLflow's registry." in result.output


def test_explain_an_unknown_field_suggests_the_nearest_and_exits_2(cli: Cli) -> None:
    result = cli("explain", "Model.registerdModel")
    assert result.exit_code == 2
    assert "`Model` has no field `registerdModel`" in result.output
    assert "registeredModel" in result.output
    unknown_kind = cli("explain", "Modle")
    assert unknown_kind.exit_code == 2 and "unknown kind `Modle`" in unknown_kind.output
