"""Step programs that run inside the generated workflows (``python -m llmops_compiler.runtime.<step>``).

They import heavy libraries (torch, transformers, peft, mlflow, scipy) lazily; install the ``runtime`` extra.
"""
