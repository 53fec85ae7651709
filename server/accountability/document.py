"""The periodic review as a Word document (python-docx): title, period, the ranking, every item with its evidence."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml.ns import qn
from docx.shared import Pt

from server.accountability.domain import KINDS, Standing

FONT = "Noto Sans CJK SC"  # Word falls back to a CJK font it has when this one is missing


def review_docx(city: str, first: str, last: str, standings: Sequence[Standing], items: Sequence[Mapping[str, Any]],
                names: Mapping[str, Mapping[str, str | None]], base_url: str) -> bytes:
    """The review as .docx bytes; `items` are the page's rows, `base_url` makes their evidence links whole."""
    document = Document()
    style = document.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(10.5)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)  # the East Asian font is a separate attribute in Word
    document.add_heading(f"{city} 定期点评 Periodic review", level=0)
    document.add_paragraph(f"{first} — {last}")
    document.add_heading("排名 Ranking", level=1)
    table = document.add_table(rows=1, cols=3 + len(KINDS))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    header = ["#", "单位 Site", *(zh for zh, _ in KINDS.values()), "合计 Total"]
    for cell, text in zip(table.rows[0].cells, header):
        cell.text = text
    for standing in standings:
        site = names.get(standing.site, {})
        row = [str(standing.rank), site.get("name_zh") or standing.site, *(str(standing.counts[k] or "") for k in KINDS),
               str(standing.total)]
        for cell, text in zip(table.add_row().cells, row):
            cell.text = text
    document.add_heading(f"明细 Items ({len(items)})", level=1)
    if not items:
        document.add_paragraph("本期无问题记录 Nothing to answer for in this period")
    for item in items:
        line = document.add_paragraph(style="List Number")
        line.add_run(f"{item['when']} {item['name_zh']} ").bold = True
        line.add_run(f"{item['kind_zh']} {item['kind_en']} · {item['title']} · 证据 evidence: {base_url}{item['evidence']}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
