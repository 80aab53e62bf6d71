"""Chunks of a document's text, with the KnowledgeBase's strategy, size and overlap (langchain-text-splitters).

Sizes and overlaps are in characters (``len``), as the spec states them.

``fixed``      ``CharacterTextSplitter(separator="", strip_whitespace=False)``: windows of exactly ``size``
               characters (the last one shorter), neighbours sharing ``overlap``, wherever the cut falls.
               It merges character by character: about 1 s per MB of text.
``recursive``  ``RecursiveCharacterTextSplitter``: cut at paragraphs, then lines, then words, then characters,
               whichever first gives pieces of at most ``size``; Markdown documents use its Markdown
               separators (headings, code fences, rules) first.
``sentence``   ``SpacyTextSplitter(pipeline="sentencizer")``: spaCy's rule-based sentencizer (no trained model to
               download) finds sentence ends and whole sentences are packed into chunks of at most ``size``;
               a single sentence longer than ``size`` is cut by the ``recursive`` splitter, so no chunk is
               ever longer than ``size``. spaCy refuses texts over its ``max_length`` (1,000,000 characters),
               so a longer text is first cut at paragraph boundaries into blocks under that length.

Empty and whitespace-only chunks are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from llmops_compiler.runtime._kb_documents import MARKDOWN_SUFFIXES

STRATEGIES: Final = ("fixed", "recursive", "sentence")
#: Longest text handed to spaCy at once (its ``Language.max_length`` default is 1,000,000).
SPACY_BLOCK_CHARS: Final = 900_000


@dataclass(frozen=True)
class ChunkingConfig:
    strategy: str
    size: int
    overlap: int

    def validate(self) -> None:
        """Raises ``ValueError`` for an unknown strategy, ``size < 1`` or an overlap outside ``[0, size)``."""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown chunk strategy {self.strategy!r} (expected one of {', '.join(STRATEGIES)})")
        if self.size < 1:
            raise ValueError(f"--chunk-size must be at least 1, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"--chunk-overlap must be in [0, chunk size {self.size}), got {self.overlap}")


class Chunker:
    """Splits texts with one :class:`ChunkingConfig`; the splitters are built once and reused."""

    def __init__(self, config: ChunkingConfig) -> None:
        config.validate()
        from langchain_text_splitters import (
            CharacterTextSplitter,
            Language,
            RecursiveCharacterTextSplitter,
        )

        # langchain warns "Created a chunk of size N" for oversized sentences; we cut those ourselves.
        logging.getLogger("langchain_text_splitters").setLevel(logging.ERROR)
        self.config = config
        size, overlap = config.size, config.overlap
        self._recursive: Any = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
        self._markdown: Any = None
        self._fixed: Any = None
        self._sentence: Any = None
        self._blocks: Any = None
        if config.strategy == "fixed":
            self._fixed = CharacterTextSplitter(
                separator="", chunk_size=size, chunk_overlap=overlap, strip_whitespace=False
            )
        elif config.strategy == "recursive":
            self._markdown = RecursiveCharacterTextSplitter.from_language(
                Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap
            )
        else:
            from langchain_text_splitters import SpacyTextSplitter

            self._sentence = SpacyTextSplitter(
                pipeline="sentencizer", separator=" ", chunk_size=size, chunk_overlap=overlap
            )
            self._blocks = RecursiveCharacterTextSplitter(chunk_size=SPACY_BLOCK_CHARS, chunk_overlap=0)

    def split(self, text: str, suffix: str = "") -> list[str]:
        """Chunks of ``text`` in document order; ``suffix`` (e.g. ``".md"``) picks format-aware separators."""
        if not text.strip():
            return []
        strategy = self.config.strategy
        if strategy == "fixed":
            chunks: list[str] = self._fixed.split_text(text)
        elif strategy == "recursive":
            splitter = self._markdown if suffix in MARKDOWN_SUFFIXES else self._recursive
            chunks = splitter.split_text(text)
        else:
            blocks = [text] if len(text) <= SPACY_BLOCK_CHARS else self._blocks.split_text(text)
            chunks = []
            for block in blocks:
                for chunk in self._sentence.split_text(block):
                    if len(chunk) > self.config.size:
                        chunks.extend(self._recursive.split_text(chunk))
                    else:
                        chunks.append(chunk)
        return [c for c in chunks if c.strip()]
