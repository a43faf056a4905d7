"""End to end in a real browser: the shared password gates every page, the admin password gates uploads.

A real server, because the gate depends on how Streamlit routes URLs between sessions, which AppTest
only approximates: a visitor opening /chat gets the sign-in form and nothing else (no page list in the
sidebar), a wrong password an error, the right one the chat page they asked for. Staff see documents
read-only; the administrator password, entered in the sidebar, brings the uploader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_browser import CHROMIUM, _shot, streamlit_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(tmp_path_factory, {"RAG_APP_PASSWORD": "staff pw", "RAG_ADMIN_PASSWORD": "admin pw"}) as url:
        yield url


def test_password_gate_and_admin_uploads(server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        pg = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        pg.set_default_timeout(120_000)
        password = pg.get_by_label("Password", exact=True)

        pg.goto(f"{server}/chat")
        password.wait_for()
        pg.wait_for_timeout(1000)
        body = pg.inner_text("body")
        assert "Sign in" in body and "Chat" not in body and "Documents" not in body and "Settings" not in body
        password.fill("staff pw!")
        pg.get_by_role("button", name="Sign in").click()
        pg.get_by_text("Wrong password").wait_for()
        assert "Settings" not in pg.inner_text("body")
        _shot(pg, "access-1-wrong-password")

        password.fill("staff pw")
        pg.get_by_role("button", name="Sign in").click()
        pg.get_by_role("heading", name="Chat").wait_for()  # the page that was asked for
        assert pg.url.endswith(("/chat", "/"))  # an employee's default page is the chat: its address may be the root

        pg.get_by_test_id("stSidebarNavLink").filter(has_text="Documents").click()
        pg.get_by_text("Your HR team adds and updates them").wait_for()
        assert pg.locator("input[type=file]").count() == 0
        pg.get_by_text("Administrator sign-in").click()  # in the sidebar
        pg.get_by_label("Administrator password", exact=True).fill("wrong")
        pg.get_by_role("button", name="Sign in as administrator").click()
        pg.get_by_text("Wrong administrator password").wait_for()
        pg.get_by_label("Administrator password", exact=True).fill("admin pw")
        pg.get_by_role("button", name="Sign in as administrator").click()
        pg.get_by_text("Load the sample HR policy").wait_for()
        pg.locator("input[type=file]").wait_for(state="attached")  # the uploader may draw after the button
        assert pg.locator("input[type=file]").count() == 1
        _shot(pg, "access-2-admin")

        pg.get_by_role("button", name="Sign out").click()
        password.wait_for()
        assert "Documents" not in pg.inner_text("body")
        browser.close()
