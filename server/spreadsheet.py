"""CSV that spreadsheet programs open safely: no cell is read as a formula (OWASP's CSV injection rule)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Final

# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets
# (tab and CR because some programs strip them and read what follows).
FORMULA_START: Final[tuple[str, ...]] = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell's text, prefixed with a single quote when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(header: Iterable[object], rows: Iterable[Iterable[object]]) -> str:
    """A whole CSV document, every cell made safe; the BOM makes spreadsheets read it as UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
