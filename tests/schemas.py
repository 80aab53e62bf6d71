"""Strict schema validation for tests: the same check ``llmops compile --strict`` runs."""

from llmops_compiler.strict import validate_strict

__all__ = ["validate_strict"]
