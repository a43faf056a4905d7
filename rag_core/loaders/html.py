"""HTML (a saved intranet or policy web page): the visible text, one page, headings kept as headings.

What is read: text in the page body, with block elements (paragraphs, list items, table rows, headings)
on their own lines and table cells separated by " | " so a row stays together. Headings become
Markdown heading lines ("## Sick leave"), which rag_core.structure reads as the heading path. List
items are "- " lines, as in the Word and PowerPoint loaders, and an ordered list's items keep the
number the browser shows ("- 2. Submit the form"; a bare "2. Submit the form" would read as a heading).
What is left out: the <title> (the browser's tab, not the page: it repeats the first heading with the
site's name), scripts, styles, navigation, site headers and footers, forms and other chrome.
The standard library's parser is enough for this and tolerates broken markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rag_core.loaders.errors import MAX_FILE_CHARS, NoExtractableText, TooMuchText, too_much_text_message
from rag_core.loaders.normalize import normalize_text
from rag_core.loaders.text import decode_text
from rag_core.types import LoadedFile, Page

SUFFIXES = (".html", ".htm")

_HTML_START = re.compile(rb"<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)
_SKIPPED = frozenset(
    {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "form", "button", "title"}
)
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "br", "hr"}
    | {"blockquote", "pre", "figure", "figcaption", "caption", "details", "summary", "aside", "address"}
)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_EMPTY_ITEM = re.compile(r"-(?: [0-9]+\.)?")
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


def is_html(data: bytes, suffix: str) -> bool:
    """True for a file named .html/.htm, or one not named as text whose first kilobytes open an HTML
    document (a saved page may carry a few lines of text first).

    >>> is_html(b"Saved page\\n<!DOCTYPE html><html><body>x</body></html>", ""), is_html(b"<html>", ".md")
    (True, False)
    """
    if suffix in SUFFIXES:
        return True
    return suffix not in (".txt", ".md", ".markdown") and _HTML_START.search(data[:4096]) is not None


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0  # depth inside skipped elements
        self._heading: int | None = None
        self._in_cell = False
        self._lists: list[list[int] | None] = []  # open lists, innermost last: [next number] for <ol>
        self._item_open = False  # a list marker was written and its text has not come yet

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            if tag not in _VOID:
                self._skip += 1
            return
        if self._skip:
            return
        if tag in _HEADINGS:
            self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
            self._heading = _HEADINGS[tag]
        elif tag in ("td", "th"):
            self.parts.append(" | " if self._in_cell else "")
            self._in_cell = True
        elif tag == "li":
            self.parts.append("\n- ")
            counter = self._lists[-1] if self._lists else None
            if counter is not None:
                self.parts.append(f"{counter[0]}. ")
                counter[0] += 1
            self._item_open = True
        elif tag in _BLOCKS:
            if self._item_open and tag not in ("ul", "ol"):
                return  # <li><p>text</p>: the text goes on the marker's line
            if tag in ("ul", "ol"):
                self._item_open = False
                start = dict(attrs).get("start") if tag == "ol" else None
                self._lists.append([int(start) if start and start.strip().isdigit() else 1] if tag == "ol" else None)
            self.parts.append("\n")
            if tag == "tr":
                self._in_cell = False

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag in _HEADINGS:
            self.parts.append("\n\n")
            self._heading = None
        elif tag in _BLOCKS:
            if tag in ("ul", "ol") and self._lists:
                self._lists.pop()
            self._item_open = False
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._item_open:
            data = data.lstrip()
            self._item_open = not data
        if self._heading is not None:
            data = " ".join(data.split())  # a heading stays on its one line
            if data:
                data += " "
        self.parts.append(data)


def html_text(source: str) -> str:
    """The visible text of an HTML document, headings as Markdown lines.

    >>> html_text("<nav>Home</nav><h2>Sick leave</h2><p>Ten days.</p><script>x()</script>")
    '## Sick leave\\n\\nTen days.'
    """
    start = source.lower().find("<!doctype")
    if start > 0:  # a saved page may carry a few lines of tool output before the document
        source = source[start:]
    parser = _Visible()
    parser.feed(source)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    lines = [line for line in lines if not _EMPTY_ITEM.fullmatch(line)]  # an item holding only a list
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load_html(data: bytes) -> LoadedFile:
    """Decode an HTML file and keep its visible text as one page."""
    if len(data) > MAX_FILE_CHARS * 4:
        raise TooMuchText(too_much_text_message(len(data) // 4))
    text = normalize_text(html_text(decode_text(data)))
    if len(text) > MAX_FILE_CHARS:
        raise TooMuchText(too_much_text_message(len(text)))
    if not text:
        raise NoExtractableText("no visible text: the page holds only markup, scripts or navigation")
    return LoadedFile(kind="html", pages=[Page(1, text)], page_count=1)
