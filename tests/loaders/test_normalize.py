"""rag_core.loaders.normalize: the text clean-up every format shares."""

from __future__ import annotations

from rag_core.loaders import normalize_text


class TestNormalize:
    def test_ligatures_become_letters(self) -> None:
        assert normalize_text("the ﬁrst ﬂoor") == "the first floor"

    def test_hyphenated_line_break_is_joined(self) -> None:
        assert normalize_text("employ-\nees may") == "employees may"

    def test_real_hyphen_before_capital_is_kept(self) -> None:
        assert normalize_text("Covid-\n19 and Anti-\nHarassment") == "Covid-\n19 and Anti-\nHarassment"

    def test_whitespace_collapsed_paragraphs_kept(self) -> None:
        assert normalize_text("a   b\t\tc\n\n\n\n d ") == "a b c\n\nd"

    def test_control_characters_removed(self) -> None:
        assert normalize_text("a\x00b\x07c") == "a b c"
