"""Plain text out of a document's bytes, chosen by the object key's suffix.

======================  =====================================================================================
suffix                  how
======================  =====================================================================================
``.txt``                UTF-8 as written (a byte-order mark is dropped, line ends unified); another encoding
                        is an error naming the offending byte
``.md``, ``.markdown``  the same: the Markdown source is kept (its headings guide the ``recursive`` splitter)
``.html``, ``.htm``     BeautifulSoup (``html.parser``; the encoding from the BOM, ``<meta charset>`` or a guess):
                        scripts, styles and templates dropped; block elements end a paragraph
``.pdf``                pypdf's text layer, page by page (an encrypted PDF is tried with the empty password);
                        a scanned PDF without a text layer yields no text (OCR is out of scope)
======================  =====================================================================================

Every parser failure is a :class:`DocumentError` whose message names the document.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any, Final

TEXT_SUFFIXES: Final = (".txt",)
MARKDOWN_SUFFIXES: Final = (".md", ".markdown")
HTML_SUFFIXES: Final = (".html", ".htm")
PDF_SUFFIXES: Final = (".pdf",)
SUPPORTED_SUFFIXES: Final = (*TEXT_SUFFIXES, *MARKDOWN_SUFFIXES, *HTML_SUFFIXES, *PDF_SUFFIXES)

#: Elements whose end is a paragraph break in the extracted text (everything else is inline).
HTML_BLOCK_TAGS: Final = frozenset((
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "summary", "table", "td", "th", "title", "tr", "ul",
))  # fmt: skip
#: Elements whose content is never text a reader sees.
HTML_DROPPED_TAGS: Final = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object")

MAX_TEXT_CHARS: Final = 10_000_000
"""The most text one document may yield by default (about 5,000 pages): bounds the work of chunking and
embedding one object, whatever its compressed size."""

_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*(?:\n[ \t\r\f\v]*)+")
_HTML_SPACE = re.compile(r"\s+")
_INLINE_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")


class DocumentError(Exception):
    """A document that cannot be turned into text; the message starts with the document's key."""


def document_suffix(key: str) -> str:
    """The lower-cased suffix of an object key (``"guides/A.PDF"`` -> ``".pdf"``; ``""`` when none)."""
    return PurePosixPath(key).suffix.lower()


def _text(key: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{key}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _plain(key: str, data: bytes) -> str:
    """Text and Markdown as written: only line ends are unified and NULs dropped."""
    return _text(key, data).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()


def _normalise(text: str) -> str:
    """Collapse runs of spaces inside lines and of blank lines between paragraphs; drop NULs."""
    lines = (_INLINE_SPACE.sub(" ", line).strip() for line in text.replace("\x00", "").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _html(key: str, data: bytes) -> str:
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, Tag

    try:
        soup = BeautifulSoup(data, "html.parser")
    except Exception as exc:  # the parser's own exceptions vary by version
        raise DocumentError(f"{key}: not parseable as HTML: {type(exc).__name__}: {exc}") from None
    # One walk with an explicit stack, in document order, so the work stays linear however deeply elements
    # nest (editing the tree, or asking each string for its <pre> ancestor, costs the depth each time). Source
    # line breaks inside running text are spaces to a reader, except in <pre>; <br> is a line break; the end
    # of a block element ends a paragraph; comments, the doctype and dropped elements are not text.
    parts: list[str] = []
    work: list[tuple[Any, bool]] = [(soup, False)]  # (a node and whether it lies in a <pre>) or (text, True)
    while work:
        node, flag = work.pop()
        if isinstance(node, Tag):
            if node.name in HTML_DROPPED_TAGS:
                continue
            if node.name == "br":
                parts.append("\n")
                continue
            if node.name in HTML_BLOCK_TAGS:
                work.append((_PARAGRAPH_END, True))
            inside = flag or node.name == "pre"
            work.extend((child, inside) for child in reversed(node.contents))
        elif node is _PARAGRAPH_END:
            parts.append("\n\n")
        elif type(node) is NavigableString:
            parts.append(str(node) if flag else _HTML_SPACE.sub(" ", str(node)))
        elif type(node) is CData:
            parts.append(str(node))
    return _normalise("".join(parts))


_PARAGRAPH_END: Final = object()


def _pdf(key: str, data: bytes, max_chars: int) -> str:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # recoverable-structure warnings are noise here
    pages: list[str] = []
    total = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{key}: the PDF is encrypted with a password")
        count = len(reader.pages)
        for number, page in enumerate(reader.pages, start=1):
            pages.append(page.extract_text() or "")
            total += len(pages[-1])
            if total > max_chars:  # a few KiB of compressed streams can expand to gigabytes of text
                raise _too_long(key, max_chars, f" (at page {number} of {count})")
    except DocumentError:
        raise
    except Exception as exc:  # pypdf raises PdfReadError and, on damaged files, plain ValueError/KeyError/...
        raise DocumentError(f"{key}: not a readable PDF: {type(exc).__name__}: {exc}") from None
    return _normalise("\n\n".join(pages))


def _too_long(key: str, max_chars: int, where: str = "") -> DocumentError:
    return DocumentError(f"{key}: its text runs past {max_chars} characters{where}; raise --max-text-chars if the "
                         "document is real")


_PARSERS: Final[dict[str, Callable[[str, bytes], str]]] = {
    **{s: _plain for s in (*TEXT_SUFFIXES, *MARKDOWN_SUFFIXES)},
    **{s: _html for s in HTML_SUFFIXES},
}
"""Parsers whose text cannot hold more characters than the bytes: their length is checked once, at the end
(PDFs, whose streams expand, are counted page by page in :func:`_pdf`)."""


def extract_text(key: str, data: bytes, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The text of document ``key`` (its suffix picks the parser; see the module docstring), at most
    ``max_chars`` characters: text and HTML cannot hold more characters than bytes, but a PDF's compressed
    streams can expand without bound, so its pages are counted as they are read.

    Raises :class:`DocumentError` (message starting with ``key``) when the bytes cannot be parsed or the
    text runs past ``max_chars``, and ``ValueError`` for a suffix outside :data:`SUPPORTED_SUFFIXES` (callers
    filter those out first).
    """
    suffix = document_suffix(key)
    if suffix in PDF_SUFFIXES:
        return _pdf(key, data, max_chars)
    parser = _PARSERS.get(suffix)
    if parser is None:
        raise ValueError(f"{key}: unsupported suffix {suffix!r}")
    text = parser(key, data)
    if len(text) > max_chars:
        raise _too_long(key, max_chars)
    return text
