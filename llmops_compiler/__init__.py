"""llmops-compiler: a declarative GitOps compiler for LLM operations."""

__version__ = "0.1.0"
