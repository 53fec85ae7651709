"""The periodic review as a Word document (python-docx): title, period, the ranking, each site's figures,
the charts, every item with its evidence."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

from server.accountability.domain import KINDS, Standing

FONT = "Noto Sans CJK SC"  # Word falls back to a CJK font it has when this one is missing


@dataclass(frozen=True)
class ReviewDocument:
    """What the review's documents hold: the period, the ranking, each site's figures, charts, the items."""

    city: str
    first: str
    last: str
    standings: Sequence[Standing]
    figures: Sequence[Sequence[str]]  # rows of text, the header first
    charts: Sequence[bytes]  # PNG
    items: Sequence[Mapping[str, Any]]
    names: Mapping[str, Mapping[str, str | None]]
    base_url: str


def _table(document: Any, rows: Sequence[Sequence[str]]) -> None:
    table = document.add_table(rows=0, cols=len(rows[0]))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for row in rows:
        for cell, text in zip(table.add_row().cells, row):
            cell.text = text


def review_docx(doc: ReviewDocument) -> bytes:
    """The review as .docx bytes (landscape): the items' evidence links are made whole with `base_url`."""
    document = Document()
    section = document.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = section.page_height, section.page_width
    style = document.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(10.5)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)  # the East Asian font is a separate attribute in Word
    document.add_heading(f"{doc.city} 定期点评 Periodic review", level=0)
    document.add_paragraph(f"{doc.first} — {doc.last}")
    document.add_heading("排名 Ranking", level=1)
    header = ["#", "单位 Site", *(zh for zh, _ in KINDS.values()), "合计 Total"]
    _table(document, [header, *([str(s.rank), str(doc.names.get(s.site, {}).get("name_zh") or s.site),
                                 *(str(s.counts[k] or "") for k in KINDS), str(s.total)] for s in doc.standings)])
    if doc.figures:
        document.add_heading("各单位统计 Figures per site", level=1)
        _table(document, doc.figures)
    for chart in doc.charts:
        document.add_picture(io.BytesIO(chart), width=Cm(24))
    document.add_heading(f"明细 Items ({len(doc.items)})", level=1)
    if not doc.items:
        document.add_paragraph("本期无问题记录 Nothing to answer for in this period")
    for item in doc.items:
        line = document.add_paragraph(style="List Number")
        line.add_run(f"{item['when']} {item['name_zh']} ").bold = True
        line.add_run(f"{item['kind_zh']} {item['kind_en']} · {item['title']} · 证据 evidence: {doc.base_url}{item['evidence']}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
