"""The periodic review as a PDF (fpdf2), with a Chinese font embedded: what a leader signs and files.

The font is the machine's Noto Sans CJK SC (Debian's fonts-noto-cjk; scripts/ensure-fonts.sh installs
it), or WenQuanYi, or the file named by `REVIEW_PDF_FONT`; without one the export is refused clearly
rather than printing empty boxes.
"""

from __future__ import annotations

import os
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from server.accountability.document import ReviewDocument
from server.accountability.domain import KINDS
from server.errors import RequestError

# (file, number of the face in a collection): Noto's collection holds JP, KR, SC, TC, HK in that order.
FONTS: Final[tuple[tuple[str, int], ...]] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)


class NoChineseFont(RequestError):
    """No Chinese font on this machine: a PDF would print boxes."""

    def __init__(self) -> None:
        super().__init__("no_chinese_font", "no Chinese font is installed for the PDF: run scripts/ensure-fonts.sh "
                                            "(apt-get install fonts-noto-cjk) or set REVIEW_PDF_FONT")


def font_file() -> tuple[str, int]:
    """The Chinese font to embed: (path, face number); NoChineseFont if there is none."""
    named = os.environ.get("REVIEW_PDF_FONT")
    for path, face in ((named, 0),) if named else FONTS:
        if Path(path).is_file():
            return path, face
    raise NoChineseFont()


def _table(pdf: FPDF, rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
    """A grid; the header row's cells wrap (Chinese over English) instead of running into each other."""
    pdf.set_fill_color(226, 232, 240)
    for n, row in enumerate(rows):
        pdf.set_font(size=7 if n == 0 else 7.5)
        height = 9 if n == 0 else 6
        for text, width in zip(row, widths):
            lines = text.split(" ", 1) if n == 0 else [text]
            pdf.multi_cell(width, height / len(lines), "\n".join(lines), border=1, fill=n == 0,
                           new_x=XPos.RIGHT, new_y=YPos.TOP, max_line_height=height / len(lines))
        pdf.ln(height)


def review_pdf(doc: ReviewDocument) -> bytes:
    """The review as PDF bytes (A4 landscape)."""
    path, face = font_file()
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.add_font("cjk", fname=path, collection_font_number=face)
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("cjk", size=18)
    pdf.cell(0, 10, f"{doc.city} 定期点评 Periodic review", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(size=11)
    pdf.cell(0, 7, f"{doc.first} — {doc.last}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font(size=13)
    pdf.cell(0, 8, "排名 Ranking", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    header = ["#", "单位 Site", *(zh for zh, _ in KINDS.values()), "合计 Total"]
    rows = [header, *([str(s.rank), str(doc.names.get(s.site, {}).get("name_zh") or s.site),
                       *(str(s.counts[k] or "") for k in KINDS), str(s.total)] for s in doc.standings)]
    _table(pdf, rows, [10, 40, *([29] * len(KINDS)), 20])
    pdf.ln(3)
    pdf.set_font(size=13)
    pdf.cell(0, 8, "各单位统计 Figures per site", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _table(pdf, doc.figures, [40, *([29] * (len(doc.figures[0]) - 1))] if doc.figures else [])
    for chart in doc.charts:
        pdf.add_page()
        pdf.image(io.BytesIO(chart), w=pdf.epw, h=pdf.eph - 4, keep_aspect_ratio=True)  # a tall chart shrinks to the page
    pdf.add_page()
    pdf.set_font(size=13)
    pdf.cell(0, 8, f"明细 Items ({len(doc.items)})", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(size=9)
    if not doc.items:
        pdf.cell(0, 6, "本期无问题记录 Nothing to answer for in this period", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for n, item in enumerate(doc.items, start=1):
        pdf.multi_cell(0, 5, f"{n}. {item['when']} {item['name_zh']} {item['kind_zh']} {item['kind_en']} · {item['title']}"
                             f" · 证据 evidence: {doc.base_url}{item['evidence']}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(8)
    pdf.set_font(size=11)
    pdf.cell(0, 8, "审核人 Reviewed by: ____________________    签发 Signed: ____________________    日期 Date: __________",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
