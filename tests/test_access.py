"""Access: the optional shared password gates every page; an admin password restricts uploads and deletes.

Through AppTest, as a visitor meets them: with no password the app says it is open; with one, the
sign-in form is all there is (no page, no sidebar setting, no document name) until the right password
is given, from the environment or from st.secrets; a wrong one shows an error and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "kb"
    monkeypatch.setenv("RAG_DATA_DIR", str(d))
    monkeypatch.delenv("RAG_APP_PASSWORD", raising=False)
    monkeypatch.delenv("RAG_ADMIN_PASSWORD", raising=False)
    yield d


@pytest.fixture
def one_document(data_dir: Path, embedder: Embedder, policy_pdf: Path) -> Path:
    Engine(Settings(data_dir=data_dir), embedder=embedder).ingest_paths([policy_pdf])
    return data_dir


def start(page: str | None = None, secrets: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.secrets.update(secrets or {})
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, at.exception
    return at


def sign_in(at: AppTest, password: str, form: str = "Sign in") -> AppTest:
    key = "access_password" if form == "Sign in" else "access_admin_password"
    at.text_input(key=key).input(password)
    next(b for b in at.button if b.label == form).click().run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> str:
    """Every text the visitor can see, sidebar included."""
    parts = [t.value for t in at.title] + [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [str(e.value) for e in (*at.info, *at.error, *at.success, *at.warning)]
    parts += [str(w.label) for w in (*at.text_input, *at.button, *at.slider, *at.selectbox)]
    return "\n".join(parts)


def assert_only_the_form(at: AppTest) -> None:
    assert [t.value for t in at.title] == ["PolicyPal"]
    assert [w.label for w in at.text_input] == ["Password"]
    assert len(at.sidebar.children) == 0 or not any(True for _ in at.sidebar.slider)
    assert not at.dataframe and not at.chat_input and not at.slider and not at.selectbox
    assert "policy.pdf" not in shown(at) and "Knowledge base" not in shown(at)


class TestAppPassword:
    def test_without_a_password_the_app_says_it_is_open(self, data_dir: Path) -> None:
        at = start()  # no secrets.toml exists either: reading st.secrets must not crash
        assert "Open access" in shown(at) and "RAG_APP_PASSWORD" in shown(at)
        assert [t.value for t in at.title] == ["Documents"]

    @pytest.mark.parametrize("page", ["documents", "chat", "analysis"])
    def test_a_session_on_any_page_gets_only_the_form_once_a_password_is_set(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch, page: str
    ) -> None:
        at = start(page)  # open, on that page
        monkeypatch.setenv("RAG_APP_PASSWORD", "correct horse")  # then a password is set
        at.run()
        assert_only_the_form(at)

    def test_a_wrong_password_gets_an_error_and_nothing_else(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAG_APP_PASSWORD", "correct horse")
        at = start()
        assert_only_the_form(at)
        sign_in(at, "correct hors")
        assert "Wrong password" in shown(at)
        assert_only_the_form(at)
        with pytest.raises(ValueError, match=r"Could not find a navigation page for .*chat\.py"):
            at.switch_page("pages/chat.py")  # only sign-in pages exist for this session

    def test_the_right_password_opens_every_page(self, one_document: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RAG_APP_PASSWORD", "correct horse")
        at = sign_in(start(), "correct horse")
        assert [t.value for t in at.title] == ["Documents"] and at.dataframe[0].value["name"].tolist() == ["policy.pdf"]
        assert "Open access" not in shown(at) and "Sign out" in [b.label for b in at.button]
        for page, title in (("chat", "Chat"), ("analysis", "Analysis"), ("documents", "Documents")):
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception and [t.value for t in at.title] == [title]

    def test_password_from_secrets_and_a_changed_password_signs_out(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        at = start(secrets={"app_password": "from-secrets"})
        assert_only_the_form(at)
        sign_in(at, "from-secrets")
        assert [t.value for t in at.title] == ["Documents"]
        monkeypatch.setenv("RAG_APP_PASSWORD", "rotated")  # the environment wins over secrets
        at.run()
        assert_only_the_form(at)


class TestAdminPassword:
    def test_without_the_admin_password_documents_are_read_only(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAG_ADMIN_PASSWORD", "admin pw")
        at = start("documents")
        assert at.dataframe[0].value["name"].tolist() == ["policy.pdf"]  # the list is visible...
        assert not at.get("file_uploader")  # ...but nothing changes it
        labels = [b.label for b in at.button]
        assert "Ingest" not in labels and "Delete…" not in labels
        assert "Your HR team adds and updates them" in shown(at)
        sign_in(at, "wrong", form="Sign in as administrator")  # in the sidebar, on every page
        assert "Wrong administrator password" in shown(at) and not at.get("file_uploader")
        sign_in(at, "admin pw", form="Sign in as administrator")
        assert at.get("file_uploader") and "Delete…" in [b.label for b in at.button]
        assert "Your HR team adds and updates them" not in shown(at)

    def test_no_sample_loading_without_the_admin_password(
        self, data_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAG_ADMIN_PASSWORD", "admin pw")
        at = start("documents")
        assert "Load the sample HR policy" not in [b.label for b in at.button]
        assert "an administrator has to add them" in shown(at)

    def test_the_admin_password_also_opens_the_gate(self, one_document: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RAG_APP_PASSWORD", "staff pw")
        monkeypatch.setenv("RAG_ADMIN_PASSWORD", "admin pw")
        at = sign_in(start(), "staff pw")
        assert not at.get("file_uploader")  # staff: read-only
        at = sign_in(start(), "admin pw")
        assert at.get("file_uploader")  # one password for an administrator


class TestTwoAudiences:
    """An employee (no admin password given) asks and reads; nothing technical reaches their screen."""

    JARGON = ("RAG_", "top-k", "cosine", "BM25", "bm25", "dense", "embedding", "Prompt sent", "/tmp", "chunks")

    def test_an_employee_sees_chat_and_documents_in_plain_words(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAG_ADMIN_PASSWORD", "admin pw")
        at = start()
        assert [t.value for t in at.title] == ["Chat"]  # an employee starts where they ask
        assert not [w for w in at.sidebar if getattr(w, "key", None) and str(w.key).startswith("settings_")]
        at.chat_input(key="chat_input").set_value("Can I work from home?").run()
        assert not at.exception
        labels = [re.sub(r"\\(.)", r"\1", e.label) for e in at.expander]  # as shown, Markdown escapes undone
        assert any("policy.pdf · page 2 · similarity" in label for label in labels), labels
        screen = shown(at) + "\n".join(labels) + "\n".join(str(c.value) for c in at.caption)
        assert not [word for word in self.JARGON if word in screen], screen
        assert not at.toggle  # no with/without-retrieval experiment
        at.switch_page("pages/documents.py").run()
        assert not at.exception and at.dataframe[0].value.columns.tolist() == ["name", "version", "pages", "added"]
        screen = shown(at) + "\n".join(str(c.value) for c in at.caption)
        assert not [word for word in self.JARGON if word in screen], screen

    def test_an_administrator_gets_the_advanced_settings_and_every_page(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAG_ADMIN_PASSWORD", "admin pw")
        at = sign_in(start(), "admin pw", form="Sign in as administrator")
        assert [w.key for w in at.sidebar if getattr(w, "key", None) and str(w.key).startswith("settings_")] == [
            "settings_top_k",
            "settings_metric",
            "settings_mode",
            "settings_generator",
        ]
        for page, title in (("analysis", "Analysis"), ("evaluate", "Evaluate"), ("documents", "Documents")):
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception and [t.value for t in at.title] == [title]


class TestFeedbackReachesInsights:
    """An employee asks three questions (one the documents do not cover) and gives one thumbs down with a
    reason; an administrator sees them on Insights, the uncovered one under its topic, and exports CSV."""

    def test_employee_questions_and_feedback_on_the_admin_insights_page(
        self, one_document: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAG_ADMIN_PASSWORD", "admin pw")
        at = start()
        assert "Questions and answers are logged (without your name) for 90 days" in shown(at)
        for question in (
            "How many days of annual leave do I get?",
            "Can I work from home?",
            "Can I bring my dog to the office?",
        ):
            at.chat_input(key="chat_input").set_value(question).run()
            assert not at.exception, at.exception
        assert len(at.chat_message) == 6
        votes = at.get("feedback")
        assert len(votes) == 3  # one per logged answer
        votes[1].set_value(0).run()  # thumbs down on the remote-work answer
        at.get("button_group")[-1].set_value("incomplete").run()
        assert not at.exception

        admin = start()
        sign_in(admin, "admin pw", form="Sign in as administrator")
        admin.switch_page("pages/insights.py").run()
        assert not admin.exception, admin.exception
        assert [m.value for m in admin.metric][:2] == ["3", "1"]
        topics = [e.label for e in admin.expander]
        assert any("dog" in label for label in topics), topics
        examples = "\n".join(m.value for m in admin.markdown)
        assert "Can I bring my dog to the office?" in re.sub(r"\\(.)", r"\1", examples)
        thumbs_down = admin.dataframe[-1].value
        assert thumbs_down["question"].tolist() == ["Can I work from home?"]
        assert thumbs_down["reason"].tolist() == ["incomplete"]
        csv_buttons = [b for b in admin.get("download_button")]
        assert len(csv_buttons) == 5
