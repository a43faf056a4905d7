"""Extracted text -> clean text, the same for every format: NFKC, no control characters, words
hyphenated across line ends joined, whitespace collapsed, paragraph breaks kept."""

from __future__ import annotations

import re
import unicodedata

_HYPHEN_BREAK = re.compile(r"(\w)[-\u00ad]\n[ \t]*([a-z])")
_SOFT_HYPHEN = re.compile("\u00ad")
_SPACES = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Table-of-contents leaders ("Vacation ........ 46") carry no meaning but cost many word pieces.
_LEADERS = re.compile(r"(?:\s?[.\u2026·_]){4,}")


def normalize_text(text: str) -> str:
    """NFKC, join words hyphenated across line ends, collapse whitespace, keep paragraph breaks.

    >>> normalize_text("The ﬁrst bene-\\nfit   is   here.\\r\\n\\n\\n\\nLeave ....... 4")
    'The first benefit is here.\\n\\nLeave … 4'
    """
    if _SURROGATE.search(text):
        # A crafted ToUnicode map can yield UTF-16 surrogates, which no tokenizer or UTF-8 store accepts:
        # join the valid pairs into their characters and replace the lone ones with U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _LEADERS.sub(" … ", text)
    text = _SOFT_HYPHEN.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()
