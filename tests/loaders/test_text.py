"""rag_core.loaders.text: decoding (UTF-8, BOMs, UTF-16, cp1252) and one page per text file."""

from __future__ import annotations

import pytest

from rag_core.loaders import NoExtractableText, load_bytes


class TestText:
    def test_utf8_text_is_one_page(self) -> None:
        loaded = load_bytes("Café policy\n\nSecond paragraph".encode(), "p.txt")
        assert loaded.kind == "txt"
        assert [(p.number, p.text) for p in loaded.pages] == [(1, "Café policy\n\nSecond paragraph")]

    def test_utf8_bom_and_utf16(self) -> None:
        assert load_bytes("\ufeffHello".encode(), "a.md").pages[0].text == "Hello"
        assert load_bytes("Grüße".encode("utf-16"), "b.txt").pages[0].text == "Grüße"

    def test_cp1252_fallback(self) -> None:
        assert load_bytes("naïve “quotes”".encode("cp1252"), "c.txt").pages[0].text == "naïve “quotes”"

    def test_whitespace_only_text(self) -> None:
        with pytest.raises(NoExtractableText):
            load_bytes(b"  \n\n \t", "blank.txt")
