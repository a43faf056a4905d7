"""End to end in a real browser: an employee asks, an administrator learns from it.

An employee (staff password) asks three questions, one the documents do not cover, and gives one
answer a thumbs down with a reason; the administrator then sees them on Insights (the uncovered
question under its topic) and on the Analysis map, then compares a fine-tuned model with retrieval on
the Evaluate page. Screenshots: the employee's chat, Insights, the map, the comparison.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_browser import CHROMIUM, _shot, streamlit_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]

QUESTIONS = (
    "How many days of paid annual leave do I get?",
    "Can I work from home, and how often?",
    "Can I bring my dog to the office?",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(tmp_path_factory, {"RAG_APP_PASSWORD": "staff pw", "RAG_ADMIN_PASSWORD": "admin pw"}) as url:
        yield url


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A tiny random GPT-2 and its LoRA adapter, trained on the sample policy's text before it is loaded."""
    from rag_core.lora import FinetuneOptions, train
    from tests.lm import SAMPLE_TEXT, tiny_gpt2

    base = tiny_gpt2(tmp_path_factory.mktemp("base"), [SAMPLE_TEXT] * 3, positions=512, vocab=600)
    adapter = tmp_path_factory.mktemp("adapter") / "out"
    texts = [p for p in SAMPLE_TEXT.split("\n\n") if p.strip()]
    train(base, texts, adapter, FinetuneOptions(steps=5, block_tokens=64), generation=0, documents=[])
    return f"hf:{base}", f"hf:{adapter}"


def _sign_in(pg: object, password: str) -> None:
    pg.get_by_label("Password", exact=True).fill(password)  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]


def test_employee_questions_reach_the_admin(server: str, models: tuple[str, str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        admin.set_default_timeout(120_000)
        admin.goto(f"{server}/documents")
        _sign_in(admin, "admin pw")  # the admin password also opens the gate
        admin.get_by_role("button", name="Load the sample HR policy").click()
        admin.get_by_text("In the knowledge base (1)").wait_for()

        employee = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        employee.set_default_timeout(120_000)
        employee.goto(server)
        _sign_in(employee, "staff pw")
        employee.get_by_role("heading", name="Chat").wait_for()
        employee.get_by_text("Questions and answers are logged").wait_for()
        box = employee.get_by_test_id("stChatInputTextArea")
        for n, question in enumerate(QUESTIONS, start=1):
            box.fill(question)
            box.press("Enter")
            employee.get_by_test_id("stFeedback").nth(n - 1).wait_for()
        body = employee.inner_text("body")
        assert not re.search(r"RAG_|top-k|cosine|BM25|dense rank|Prompt sent|Analysis|Insights", body), body
        thumbs = employee.get_by_test_id("stFeedback").nth(1).get_by_test_id("stFeedbackButton")
        thumbs.nth(1).click()  # thumbs down ("Thumbs up" comes first) on the remote-work answer
        employee.get_by_text("incomplete", exact=True).click()  # the optional reason
        employee.wait_for_timeout(1500)
        _shot(employee, "4-employee-chat")

        admin.get_by_test_id("stSidebarNavLink").filter(has_text="Insights").click()
        admin.get_by_text("What employees asked that our documents don't cover").wait_for()
        admin.get_by_text("Can I bring my dog to the office?").first.wait_for()
        admin.get_by_text("Thumbs-down answers (1)").wait_for()
        admin.set_viewport_size({"width": 1400, "height": 1600})
        _shot(admin, "5-insights")

        admin.get_by_test_id("stSidebarNavLink").filter(has_text="Analysis").click()
        admin.locator(".js-plotly-plot").first.wait_for()
        admin.get_by_text("Show employees' questions").click()
        admin.get_by_text("3 employees' questions", exact=False).wait_for()
        _shot(admin, "6-map-questions")

        base, adapter = models
        admin.get_by_test_id("stSidebarNavLink").filter(has_text="Evaluate").click()
        admin.get_by_text("Use the sample questions").click()
        admin.get_by_text("Fine-tuning vs retrieval").first.wait_for()
        admin.get_by_label("Base model").fill(base)
        admin.get_by_label("Fine-tuned adapter (optional)").fill(adapter)
        admin.get_by_role("button", name="Compare").click()
        admin.get_by_text("Since the adapter was trained").wait_for()  # it was trained before the sample
        admin.locator(".js-plotly-plot").nth(1).wait_for()
        admin.set_viewport_size({"width": 1400, "height": 2200})
        _shot(admin, "7-compare")
        browser.close()
