"""rag_core.loaders.html: visible text and headings of a saved page, not its scripts, styles or menus."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.loaders import NoExtractableText, load_bytes
from rag_core.loaders.html import html_text, is_html

SAVED = b"""Title: Live Content
Source: URL
---
<!DOCTYPE html><html><head><title>Leave</title><style>p { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body><header><nav><a href="/">Home</a> <a href="/jobs">Jobs</a></nav></header>
<main><h1>Directive on Leave</h1><p>This directive takes effect on April&nbsp;1, 2009.</p>
<h2>5.1 Sick leave</h2><ul><li>Ten days a year.</li><li>Carried over.</li></ul>
<table><tr><th>Years of service</th><th>Days</th></tr><tr><td>10</td><td>24</td></tr></table></main>
<footer>Report a problem on this page</footer></body></html>"""


class TestHtml:
    def test_visible_text_and_headings_only(self) -> None:
        loaded = load_bytes(SAVED, "directive.html")
        text = loaded.pages[0].text
        assert loaded.kind == "html" and loaded.page_count == 1
        assert "# Directive on Leave" in text and "## 5.1 Sick leave" in text
        assert "April 1, 2009" in text and "Ten days a year." in text
        assert "Years of service | Days" in text and "10 | 24" in text  # a row stays together
        for hidden in ("tracking", "color: red", "Home", "Jobs", "Report a problem", "Live Content"):
            assert hidden not in text

    def test_detected_from_bytes_whatever_the_name(self) -> None:
        assert load_bytes(SAVED, "policy.bin").kind == "html"
        assert load_bytes(b"<p>a</p> is how HTML looks", "notes.md").kind == "md"  # named text: text
        assert is_html(b"", ".htm")

    def test_page_of_only_markup_fails_as_no_text(self) -> None:
        with pytest.raises(NoExtractableText, match="no visible text"):
            load_bytes(b"<html><body><script>x()</script><nav>Menu</nav></body></html>", "empty.html")

    def test_broken_markup_is_read(self) -> None:
        assert html_text("<p>Unclosed <b>bold<p>Next <td>cell") == "Unclosed bold\nNext cell"


def test_real_saved_policy_page() -> None:
    page = Path(__file__).resolve().parents[2].parent / "shared/eval/dev/docs"
    path = page / "tbs-directive-on-leave-and-special-working-arrangements.html"
    if not path.exists():
        pytest.skip(f"the dev documents are not at {page}")
    text = load_bytes(path.read_bytes(), path.name).pages[0].text
    assert "## 1. Effective date" in text and "This directive takes effect on April 1, 2009." in text
    assert "googletagmanager" not in text.lower() and "Skip to main content" not in text.split("##")[1]


def test_list_items_marked_and_ordered_items_numbered() -> None:
    """List items read as list items, as in Word and PowerPoint; an ordered list keeps the browser's numbers,
    behind the "- " that stops "2. Submit the form" reading as a heading."""
    text = html_text(
        "<p>To book leave:</p><ol start='2'><li>\n <p>Open the portal</p></li><li>Submit the form</li></ol>"
        "<ul><li>Ten days a year</li><li><ul><li>Carried over</li></ul></li></ul><p>Then wait.</p>"
    )
    assert text == (
        "To book leave:\n\n- 2. Open the portal\n\n- 3. Submit the form\n\n- Ten days a year\n\n"
        "- Carried over\n\nThen wait."
    )


def test_title_left_out() -> None:
    """The <title> is the browser tab's text (often "Page | Site"), not part of the page."""
    text = load_bytes(b"<html><head><title>Leave | Intranet</title></head><body><h1>Leave</h1></body></html>", "l.html")
    assert text.pages[0].text == "# Leave"
