"""Scoping: a question that names an organisation or document is answered from that document.

Why: in a knowledge base with several employers' policies, "At Comcare, how many days in a row can I be
off sick before I need to show some proof?" matched other handbooks' sick-leave pages (the topic), or
Comcare's own welcome page (the name), but not Comcare's sick-leave clause: the name and the topic
compete for one similarity score. Scoping separates them: the name picks the document, the rest of the
question picks the passage inside it.

Which words name a document: a question word whose chunks lie (nearly) all in one document, that the
documents write as a name (capitalised in most chunks that contain it: "Comcare", "OC San", "Auckland",
not "staff"), and that the question writes as a name (capitalised, not its first word) or that is in
the document's file name ("made tech" for made-tech-handbook.pdf). Concentration alone is not enough:
a topic word can live in one document too ("snowstorm"), and months or countries ("June", "Canada")
are capitalised but spread over documents, so every test must pass. A word split between documents
("Treasury" in two Treasury Board documents) scopes nothing: a wrong scope hides the right answer, a
missing one only leaves ranking as it was.

The name is then removed from the query that ranks passages inside the scope ("At Comcare, how many
days..." -> "At, how many days..."), so the pages that merely repeat the name stop winning.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import PurePath

from rag_core.lexical import tokenize
from rag_core.store import KnowledgeStore

MIN_SHARE = 0.9  # of the chunks that contain the word, at least this share are in the named document
MIN_CHUNKS = 2  # and at least this many: one stray mention is not a name
MIN_CAPITALISED = 0.8  # of the chunks that contain the word, the share that write it capitalised
_CONNECTOR = {"of", "the", "and", "for", "de", "du", "des", "la", "le"}
# Capitalised in questions without naming anything ("Is it OK to ...", "I", "HR")
_NOT_NAMES = {"i", "ok", "okay", "hr", "faq", "q", "a"}
_CAPITALISED = re.compile(r"\b[A-Z][\w'’.-]*")
_WORD = re.compile(r"[^\W_]+(?:[-.'’][^\W_]+)*")


def fold(text: str) -> str:
    """Accents off, so "Nestle" in a question finds "Nestlé" in a document.

    >>> fold("Nestlé Café")
    'Nestle Cafe'
    """
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


@dataclass(frozen=True)
class Scope:
    """The documents a question names, the words that named them, and the question without them."""

    document_ids: frozenset[str]
    words: tuple[str, ...]
    query: str


@dataclass
class _Names:
    generation: int
    chunks_of_token: dict[str, Counter[str]]  # token -> chunks containing it, per document id
    capitalised: Counter[str]  # token -> chunks that write it capitalised
    chunk_ids: dict[str, list[int]]  # document id -> its chunk ids
    file_tokens: dict[str, set[str]]  # document id -> the tokens of its file name


class Scoper:
    """Finds the documents a question names. Safe to share between threads; rebuilt per generation."""

    def __init__(self, store: KnowledgeStore):
        self.store = store
        self._lock = threading.Lock()
        self._names: _Names | None = None

    def _current(self) -> _Names:
        with self._lock:
            generation = self.store.generation()
            if self._names is None or self._names.generation != generation:
                self._names = self._build(generation)
            return self._names

    def _build(self, generation: int) -> _Names:
        rows = self.store.all_chunks()
        chunks_of_token: dict[str, Counter[str]] = defaultdict(Counter)
        chunk_ids: dict[str, list[int]] = defaultdict(list)
        file_tokens: dict[str, set[str]] = {}
        capitalised: Counter[str] = Counter()
        texts = [fold(r.text) for r in rows]
        for tokens in tokenize([" ".join(_CAPITALISED.findall(t)) for t in texts]):
            capitalised.update(set(tokens))
        for row, tokens in zip(rows, tokenize(texts), strict=True):
            chunk_ids[row.document_id].append(row.chunk_id)
            for token in set(tokens):
                chunks_of_token[token][row.document_id] += 1
            if row.document_id not in file_tokens:
                stem = PurePath(row.document).stem
                file_tokens[row.document_id] = set(tokenize([fold(re.sub(r"[-_.]+", " ", stem))])[0])
        return _Names(generation, dict(chunks_of_token), capitalised, dict(chunk_ids), file_tokens)

    def chunk_ids(self, document_ids: frozenset[str]) -> list[int]:
        """The chunk ids of these documents (as of the current generation)."""
        names = self._current()
        return [cid for d in sorted(document_ids) for cid in names.chunk_ids.get(d, [])]

    def scope(self, query: str) -> Scope | None:
        """The documents `query` names, or None when it names none (or names a word several share)."""
        names = self._current()
        if len(names.chunk_ids) < 2:
            return None  # one document: nothing to choose between
        words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(query)]
        documents: set[str] = set()
        naming: list[int] = []
        for i, (_, _, word) in enumerate(words):
            if word.lower() in _NOT_NAMES or word.lower().startswith(("i'", "i’")):
                continue
            for token in tokenize([fold(word)])[0]:
                if not any(ch.isalpha() for ch in token):
                    continue  # a bare number ("2025" in a file name) names nothing
                document = self._named(names, token, as_name=i > 0 and word[:1].isupper())
                if document is not None:
                    documents.add(document)
                    naming.append(i)
        if not documents:
            return None
        drop = _name_spans(query, words, naming)
        rest = query
        for i in sorted(drop, reverse=True):
            rest = rest[: words[i][0]] + rest[words[i][1] :]
        stripped = " ".join(rest.split())
        return Scope(frozenset(documents), tuple(words[i][2] for i in sorted(drop)), stripped)

    @staticmethod
    def _named(names: _Names, token: str, *, as_name: bool) -> str | None:
        counts = names.chunks_of_token.get(token)
        if not counts:
            return None
        document, n = counts.most_common(1)[0]
        total = sum(counts.values())
        if n < MIN_CHUNKS or n / total < MIN_SHARE or names.capitalised[token] / total < MIN_CAPITALISED:
            return None
        return document if as_name or token in names.file_tokens.get(document, set()) else None


def _name_spans(query: str, words: list[tuple[int, int, str]], naming: list[int]) -> set[int]:
    """The indices of the whole names around each naming word: the run of capitalised words and
    connectors it belongs to ("University of Auckland", "OC San"), not across punctuation, trimmed of
    connectors at its ends, never the question's first word.

    >>> q = "How long, at the University of Auckland, for sick leave?"
    >>> words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(q)]
    >>> [words[i][2] for i in sorted(_name_spans(q, words, [6]))]
    ['University', 'of', 'Auckland']
    """

    def joined(a: int, b: int) -> bool:  # words a and b = a + 1 with only spaces between them
        return query[words[a][1] : words[b][0]].isspace()

    def part_of_name(j: int) -> bool:
        w = words[j][2]
        return (w[:1].isupper() or w.lower() in _CONNECTOR) and w.lower() not in _NOT_NAMES

    drop: set[int] = set()
    for i in naming:
        lo = hi = i
        if words[i][2][:1].isupper():  # a lower-case file-name word stands alone
            while lo - 1 > 0 and joined(lo - 1, lo) and part_of_name(lo - 1):
                lo -= 1
            while hi + 1 < len(words) and joined(hi, hi + 1) and part_of_name(hi + 1):
                hi += 1
        while lo < i and words[lo][2].lower() in _CONNECTOR:
            lo += 1
        while hi > i and words[hi][2].lower() in _CONNECTOR:
            hi -= 1
        drop.update(range(lo, hi + 1))
    return drop
