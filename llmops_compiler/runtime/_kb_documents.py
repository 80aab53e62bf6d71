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
from typing import Final

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
    from bs4.element import NavigableString

    try:
        soup = BeautifulSoup(data, "html.parser")
    except Exception as exc:  # the parser's own exceptions vary by version
        raise DocumentError(f"{key}: not parseable as HTML: {type(exc).__name__}: {exc}") from None
    for tag in soup(list(HTML_DROPPED_TAGS)):
        tag.decompose()
    # Source line breaks inside running text are spaces to a reader (except in <pre>); comments, the
    # doctype and other NavigableString subclasses are not text and are left for get_text() to skip.
    for string in soup.find_all(string=True):
        if type(string) is NavigableString and string.find_parent("pre") is None:
            string.replace_with(_HTML_SPACE.sub(" ", str(string)))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(HTML_BLOCK_TAGS):
        tag.append("\n\n")
    return _normalise(soup.get_text())


def _pdf(key: str, data: bytes) -> str:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # recoverable-structure warnings are noise here
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{key}: the PDF is encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except Exception as exc:  # pypdf raises PdfReadError and, on damaged files, plain ValueError/KeyError/...
        raise DocumentError(f"{key}: not a readable PDF: {type(exc).__name__}: {exc}") from None
    return _normalise("\n\n".join(pages))


_PARSERS: Final[dict[str, Callable[[str, bytes], str]]] = {
    **{s: _plain for s in (*TEXT_SUFFIXES, *MARKDOWN_SUFFIXES)},
    **{s: _html for s in HTML_SUFFIXES},
    **{s: _pdf for s in PDF_SUFFIXES},
}


def extract_text(key: str, data: bytes) -> str:
    """The text of document ``key`` (its suffix picks the parser; see the module docstring).

    Raises :class:`DocumentError` (message starting with ``key``) when the bytes cannot be parsed, and
    ``ValueError`` for a suffix outside :data:`SUPPORTED_SUFFIXES` (callers filter those out first).
    """
    suffix = document_suffix(key)
    parser = _PARSERS.get(suffix)
    if parser is None:
        raise ValueError(f"{key}: unsupported suffix {suffix!r}")
    return parser(key, data)
