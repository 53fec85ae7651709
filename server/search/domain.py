"""Search over every record (查得到): directives, incident reports, duty reports, roll-calls, room control. Pure functions.

Chinese has no spaces between words, so a query is matched as text, not as words: the record's text
and the query are both normalised (NFKC, so full-width letters and digits match their ASCII forms,
compatibility ideographs their unified ones; case folded; traditional characters folded to simplified
ones with OpenCC's table, so "堤防滲水" finds "堤防渗水"; whitespace collapsed), then every
space-separated part of the query must occur in the record. "堤防" finds "临江堤防渗水" and
"ＡＢＣ１２３" finds "abc123". A substring match finds every record holding the text, whatever the
words around it (no segmentation to miss a word it does not know).

Ranking: records holding the whole query as one phrase (with or without its spaces) first, then those whose title holds every
part, then the rest; newest first within each.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import opencc

KINDS: Final[dict[str, tuple[str, str]]] = {
    "directive": ("指令", "Directive"),
    "incident": ("信息报送", "Incident report"),
    "duty": ("值班报告", "Duty report"),
    "rollcall": ("视频点名", "Roll-call"),
    "control": ("会场控制", "Room control"),
}
# CJK ideographs whose simplified form (OpenCC t2s, character by character) is one other character.
_IDEOGRAPHS: Final[tuple[tuple[int, int], ...]] = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
SNIPPET: Final[int] = 40  # characters of context shown each side of the first match
WINDOW: Final[int] = 80  # characters around a long record's first match mapped to place the highlight (2 x SNIPPET)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Record:
    """One searchable record: what it is, whose, when, its text, and where it is shown."""

    kind: str
    id: str
    sites: tuple[str, ...]  # the sites it concerns (for the filter)
    at: float
    title: str
    text: str
    url: str


@dataclass(frozen=True)
class Hit:
    """A record that matched, with the text around the first match split for highlighting."""

    record: Record
    before: str
    match: str
    after: str


@cache
def simplified() -> dict[int, str]:
    """The traditional-to-simplified table, character by character (built once, on the first search: ~0.2 s)."""
    converter = opencc.OpenCC("t2s")
    table: dict[int, str] = {}
    for low, high in _IDEOGRAPHS:
        chars = "".join(map(chr, range(low, high + 1)))
        converted = converter.convert("\n".join(chars)).split("\n")  # one call; a newline keeps phrases apart
        for char, simple in zip(chars, converted):
            if simple != char and len(simple) == 1:
                table[ord(char)] = simple
    return table


def normalize(text: str) -> str:
    """The form both records and queries are compared in."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold().translate(simplified())).strip()


def terms(query: str) -> list[str]:
    """The parts of a query that must all occur (none for an empty query)."""
    return [t for t in normalize(query).split(" ") if t]


def _mapped(text: str) -> tuple[str, list[int]]:
    """`text` normalised character by character, and for each normalised character the index of the original
    one it came from: a match is found in the normalised text and shown in the original (its "，" stays "，")."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = " " if char.isspace() else unicodedata.normalize("NFKC", char).casefold().translate(simplified())
        for piece in folded:
            if piece == " " and (not out or out[-1] == " "):
                continue
            out.append(piece)
            origin.append(index)
    return "".join(out), origin


def _hit(record: Record, wanted: list[str], near: int | None = None) -> Hit | None:
    """The record as a hit, its first match placed in the text as written; None if it does not match.
    With `near` (where the first match lies in the normalised text, which keeps the length of nearly all
    text) only a window around it is mapped character by character: a long record costs no more."""
    original = f"{record.title} {record.text}"
    if near is not None and len(original) > 3 * WINDOW:
        low = max(0, near - WINDOW)
        hit = _placed(record, original, wanted, low, min(len(original), near + WINDOW + max(map(len, wanted))))
        if hit is not None:
            return hit
    return _placed(record, original, wanted, 0, len(original))


def _placed(record: Record, original: str, wanted: list[str], low: int, high: int) -> Hit | None:
    whole, origin = _mapped(original[low:high])
    present = [t for t in wanted if t in whole]
    if not present or (low == 0 and high == len(original) and len(present) < len(wanted)):
        return None
    first, term = min((whole.index(t), t) for t in present)
    begin, end = low + origin[first], low + origin[first + len(term) - 1] + 1
    start, stop = max(0, begin - SNIPPET), min(len(original), end + SNIPPET)
    return Hit(record, ("…" if start else "") + original[start:begin], original[begin:end],
               original[end:stop] + ("…" if stop < len(original) else ""))


def rank(record: Record, text: str, wanted: list[str]) -> tuple[int, float]:
    """Sort key, best first: the query's parts as one phrase (written with or without the spaces between
    them: Chinese is often typed either way), then every part in the title; newer before older. `text`
    is the record's title and text normalised."""
    phrase = " ".join(wanted) in text or "".join(wanted) in text
    level = 0 if phrase else 1 if all(t in normalize(record.title) for t in wanted) else 2
    return level, -record.at


def search(records: Iterable[Record], query: str, *, kinds: Iterable[str] = (), site: str | None = None,
           start: float | None = None, end: float | None = None, limit: int = 200) -> list[Hit]:
    """The records matching every part of `query` and the filters, best first (see `rank`), at most `limit`.

    Records are matched and ranked on their normalised text; only those shown get the character by
    character mapping that places the highlight in the text as written."""
    wanted = terms(query)
    if not wanted:
        return []
    allowed = set(kinds)
    matched: list[tuple[tuple[int, float], int, Record]] = []
    for record in records:
        if allowed and record.kind not in allowed or site and site not in record.sites:
            continue
        if start is not None and record.at < start or end is not None and record.at >= end:
            continue
        text = normalize(f"{record.title} {record.text}")
        if all(t in text for t in wanted):
            matched.append((rank(record, text, wanted), min(text.index(t) for t in wanted), record))
    matched.sort(key=lambda entry: entry[0])
    hits: list[Hit] = []
    for _, near, record in matched:
        hit = _hit(record, wanted, near)
        if hit is not None:
            hits.append(hit)
            if len(hits) >= limit:
                break
    return hits
