"""End to end in a real browser: upload a real PDF, a refused .doc, then a Word file and a scan (reloading
at once: the upload is a job), chat with cited pages from each (a Word table row, an OCR'd page), see the
analysis map.

Starts `streamlit run app.py` on a free port with a temp data dir and drives Debian's Chromium with
Playwright. Screenshots land in tests/e2e/screenshots/. Skipped, with the reason, when Chromium,
Playwright or the shared corpus is missing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import CORPUS, ROOT

CHROMIUM = os.environ.get("POLICYPAL_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "screenshots"
HANDBOOK = CORPUS / "hr" / "contoso-electronics-employee-handbook.pdf"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.skipif(not HANDBOOK.exists(), reason=f"shared corpus not found at {CORPUS}"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def streamlit_server(
    tmp_path_factory: pytest.TempPathFactory, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """`streamlit run app.py` on a free port with a temp data dir; yields its URL, stops it after."""
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("kb")
    log = (tmp_path_factory.mktemp("log") / "streamlit.log").open("w")
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
            ],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(120_000)
        yield pg
        browser.close()


LEAVE_DOCX = "northwind-leave-entitlement.docx"
PARKING_SCAN = "northwind-parking-scan.pdf"


def _leave_table_docx(tmp_path: Path) -> Path:
    """A Word policy whose answer is a row of a table with a header row, as HR writes them."""
    import docx

    doc = docx.Document()
    doc.add_heading("Annual leave entitlement", level=1)
    doc.add_paragraph("Full-time employees earn paid annual leave according to their completed years of service.")
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Years of service", "Days of annual leave"
    for years, days in (("Less than 2 years", "20 days"), ("2 to 9 years", "24 days"), ("10 years or more", "28 days")):
        row = table.add_row()
        row.cells[0].text, row.cells[1].text = years, days
    doc.add_heading("Carrying leave over", level=1)
    doc.add_paragraph("Up to five unused days may be carried over into the next leave year with approval.")
    path = tmp_path / LEAVE_DOCX
    doc.save(str(path))
    return path


def _scanned_parking_pdf(tmp_path: Path) -> Path:
    """A one-page PDF that is only a picture of text, as a scanner makes it: no text layer to read."""
    from PIL import Image, ImageDraw, ImageFont

    lines = [
        "Northwind Traders - Parking Policy",
        "",
        "Employees may park in the staff car park behind the warehouse.",
        "A parking permit costs 15 dollars per month and is deducted",
        "from salary. Permits are issued by the facilities team.",
        "Visitors must register at reception and park in the visitor bays.",
    ]
    image = Image.new("L", (1700, 2200), 255)  # A4-ish at 200 dpi
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    for i, line in enumerate(lines):
        draw.text((150, 200 + i * 70), line, fill=0, font=font)
    path = tmp_path / PARKING_SCAN
    image.save(path, "PDF", resolution=200.0)
    return path


def _shot(pg: object, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    pg.wait_for_timeout(1000)  # type: ignore[attr-defined]  # let tables and plots finish drawing
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def _wait(pg: object, locator: object) -> None:
    """Wait for `locator`, but fail at once with the message if the page shows a Python exception."""
    error = pg.get_by_test_id("stException")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if error.count():
            _shot(pg, "error")
            pytest.fail(f"the page shows an exception: {error.first.inner_text()[:1500]}")
        if locator.count() and locator.first.is_visible():  # type: ignore[attr-defined]
            return
        pg.wait_for_timeout(250)  # type: ignore[attr-defined]
    _shot(pg, "timeout")
    pytest.fail(f"timed out waiting for {locator}")


def test_upload_chat_analysis(server: str, page: object, tmp_path: Path) -> None:
    pg = page  # playwright Page (typed loosely so the module imports without playwright)
    pg.goto(f"{server}/documents")  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("No documents yet"))  # type: ignore[attr-defined]
    pg.locator("input[type=file]").set_input_files(str(HANDBOOK))  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Ingest").click()  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("added, 11 pages"))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("In the knowledge base (1)"))  # type: ignore[attr-defined]
    _shot(pg, "1-documents")
    # A file PolicyPal cannot read reaches the engine and is refused with a reason on the page.
    legacy = tmp_path / "leave-policy.doc"
    legacy.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 1024)
    pg.locator("input[type=file]").set_input_files(str(legacy))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("leave-policy.doc").first)  # type: ignore[attr-defined]  # the uploader lists it
    pg.get_by_role("button", name="Ingest").click()  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("save it as .docx or PDF", exact=False))  # type: ignore[attr-defined]
    _shot(pg, "1b-refused-type")
    # A Word file whose answer is a table row, and a scan whose only text is in its picture.
    word, scan = _leave_table_docx(tmp_path), _scanned_parking_pdf(tmp_path)
    pg.locator("input[type=file]").set_input_files([str(word), str(scan)])  # type: ignore[attr-defined]
    ingest = pg.get_by_role("button", name="Ingest")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not ingest.is_enabled() and time.monotonic() < deadline:  # the uploader has both files (names cut)
        pg.wait_for_timeout(250)  # type: ignore[attr-defined]
    ingest.click()
    _wait(pg, pg.get_by_text("Upload of 2 file(s)", exact=False))  # type: ignore[attr-defined]  # queued as a job
    pg.reload()  # type: ignore[attr-defined]  # at once: the upload is a job, it goes on and its results come back
    _wait(pg, pg.get_by_text(f"{word.name}: added", exact=False))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("read by OCR", exact=False))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("In the knowledge base (3)"))  # type: ignore[attr-defined]
    _shot(pg, "1c-word-and-scan")

    pg.goto(f"{server}/chat")  # type: ignore[attr-defined]
    box = pg.get_by_test_id("stChatInputTextArea")  # type: ignore[attr-defined]
    box.fill("How often are performance reviews conducted?")
    box.press("Enter")
    _wait(pg, pg.get_by_text("contoso-electronics-employee-handbook.pdf · page 4"))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("Prompt sent"))  # type: ignore[attr-defined]
    _shot(pg, "2-chat")

    box.fill("How many days of annual leave do I get after ten years of service?")
    box.press("Enter")
    _wait(pg, pg.get_by_text(f"{LEAVE_DOCX} · section", exact=False))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("28 days", exact=False).first)  # type: ignore[attr-defined]
    _shot(pg, "2b-chat-word-table")
    box.fill("How much does a parking permit cost?")
    box.press("Enter")
    _wait(pg, pg.get_by_text(f"{PARKING_SCAN} · page 1", exact=False))  # type: ignore[attr-defined]
    _wait(pg, pg.get_by_text("read by OCR", exact=False).first)  # type: ignore[attr-defined]
    _shot(pg, "2c-chat-scanned-page")

    pg.goto(f"{server}/analysis")  # type: ignore[attr-defined]
    _wait(pg, pg.locator(".js-plotly-plot"))  # type: ignore[attr-defined]
    query = pg.get_by_label("Query to place on the map")  # type: ignore[attr-defined]
    query.fill("performance review")
    query.press("Enter")
    _wait(pg, pg.get_by_text("Top-k under each metric"))  # type: ignore[attr-defined]
    assert pg.locator(".js-plotly-plot").count() >= 2  # type: ignore[attr-defined]
    pg.set_viewport_size({"width": 1400, "height": 1900})  # type: ignore[attr-defined]
    _shot(pg, "3-analysis")
