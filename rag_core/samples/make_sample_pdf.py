"""Rebuild sample_policy.pdf from sample_policy.md (needs the dev dependency fpdf2).

The PDF is committed so the app needs no PDF writer at run time; each `## ` section starts on a
new page only when the page is more than half full, giving a few pages to cite.

    python rag_core/samples/make_sample_pdf.py
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent


def main() -> None:
    lines = (HERE / "sample_policy.md").read_text(encoding="utf-8").splitlines()
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    for line in lines:
        if line.startswith("# "):
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 10, line[2:])
            pdf.ln(2)
        elif line.startswith("## "):
            if pdf.get_y() > pdf.h / 2:
                pdf.add_page()
            pdf.ln(3)
            pdf.set_font("Helvetica", "B", 14)
            pdf.multi_cell(0, 8, line[3:])
            pdf.ln(1)
        elif line.strip():
            pdf.set_font("Helvetica", size=11)
            pdf.multi_cell(0, 6, line)
            pdf.ln(2)
    pdf.output(str(HERE / "sample_policy.pdf"))


if __name__ == "__main__":
    main()
