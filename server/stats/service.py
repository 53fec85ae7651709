"""The statistics of a period on this node, and their charts drawn in one worker thread."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from server.accountability.domain import KINDS
from server.accountability.service import AccountabilityService
from server.duty.days import deadline_of, shift_day
from server.duty.domain import STATUS_NAMES
from server.rollcall.domain import LABELS
from server.sites import SiteTree
from server.stats.charts import Format, rate_bars, rate_lines, stacked_bars, warm
from server.stats.domain import directive_stats, duty_by_day, rollcall_outcomes
from server.stats.figures import Records, by_site_and_day

STATUS_COLORS: Final[dict[str, str]] = {"filed": "#22c55e", "late": "#f59e0b", "missing": "#ef4444", "draft": "#3b82f6", "pending": "#64748b"}
KIND_COLORS: Final[dict[str, str]] = dict(zip(KINDS, ("#ef4444", "#f59e0b", "#a855f7", "#3b82f6", "#06b6d4", "#f97316", "#eab308")))
RATES: Final[dict[str, tuple[str, str]]] = {  # figure -> (name, colour) of the rate charts
    "on_time_rate": ("指令按时签收率 Directives on time", "#3b82f6"),
    "attendance": ("点名到位率 Roll-call attendance", "#22c55e"),
    "duty_compliance": ("值班报告按时率 Duty reports on time", "#f59e0b"),
}
CHARTS: Final[tuple[str, ...]] = ("duty", "sites", "rates", "trend")
DRAWN_KEPT: Final = 32


class StatsService:
    """Counts and charts of a period, read from the folds the accountability records read."""

    def __init__(self, accountability: AccountabilityService, tree: SiteTree) -> None:
        self.accountability = accountability
        self.tree = tree
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stats-chart")  # see charts.py
        self._last: tuple[tuple[object, ...], dict[str, Any]] | None = None
        # Charts drawn for the logs' present state (the figures' key): a second screen, or a page reloaded
        # within the minute, gets them without drawing again. The newest few only.
        self._drawn: dict[tuple[object, ...], str | bytes] = {}

    def warm(self) -> None:
        """Ready the chart thread in the background: the dashboard's first charts do not pay matplotlib's import."""
        self.executor.submit(warm)

    def close(self) -> None:
        """Stop the chart thread."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _bounds(self, days: list[str]) -> tuple[float, float]:
        zone = self.accountability.duty.zone
        return deadline_of(days[0], "00:00", zone), deadline_of(shift_day(days[-1], 1), "00:00", zone)

    async def figures(self, days: list[str]) -> dict[str, Any]:
        """The period's numbers: duty reports per day and state, directives, incidents, roll-call outcomes, items,
        each site's figures and their total, and the total of each day. Computed once per state of the logs."""
        return (await self._figures(days))[1]

    async def _figures(self, days: list[str]) -> tuple[tuple[object, ...], dict[str, Any]]:
        """The figures and the state of the logs (and the minute) they were computed for."""
        duty, command = self.accountability.duty, self.accountability.command
        rollcalls = await self.accountability.archive.all()
        now = duty.clock.now()
        # The same logs, the same period and the same minute give the same figures: a dashboard's page and
        # its four charts read them once.
        key = (tuple(days), command.last_event_id, duty.book.last_event_id, len(rollcalls),
               tuple(rc.last_event_id for rc in rollcalls if rc.open), int(now // 60))
        if self._last is not None and self._last[0] == key:
            return self._last
        start, end = self._bounds(days)
        incidents = [i for i in command.board.incidents.values() if i.reports and i.sent and start <= i.reports[0].at < end]
        items = await self.accountability.items(days)
        records = Records(command.ledger.directives.values(), command.board.incidents.values(), rollcalls, duty.book,
                          duty.reporting, duty.deadline, now)
        starts = [self._bounds([day])[0] for day in days]
        sites, total, trend = by_site_and_day(records, duty.reporting, days, starts, end)
        figures = {
            "duty": duty_by_day(duty.book, duty.reporting, days, duty.deadline, now),
            "directives": directive_stats(command.ledger.directives.values(), start, end),
            "incidents": len(incidents), "incidents_late": sum(i.late for i in incidents),
            "rollcalls": rollcall_outcomes(rollcalls, start, end),
            "standings": self.accountability.ranking(items),
            "sites": sites, "total": total, "trend": trend,
        }
        self._last = (key, figures)
        return self._last

    def _name(self, site: str) -> str:
        return self.tree.get(site).name_zh if site in self.tree else site

    async def chart(self, name: str, days: list[str], fmt: Format = "svg") -> str | bytes:
        """One chart of the period: `duty` (per day by state), `sites` (items per site), `rates` (each site's
        rates), `trend` (the rates day by day)."""
        state, figures = await self._figures(days)
        key = (name, fmt, state)
        if (drawn := self._drawn.get(key)) is not None:
            return drawn
        if name == "duty":
            series = {f"{STATUS_NAMES[s][0]} {STATUS_NAMES[s][1]}": v for s, v in figures["duty"].items() if any(v)}
            colors = {f"{STATUS_NAMES[s][0]} {STATUS_NAMES[s][1]}": c for s, c in STATUS_COLORS.items()}
            labels = [day[5:] for day in days]
            draw = lambda: stacked_bars(labels, series, colors, "每日值班报告 Daily duty reports", fmt=fmt)  # noqa: E731
        elif name == "sites":
            standings = figures["standings"]
            labels = [self._name(s.site) for s in standings]
            counts = {zh: [s.counts[kind] for s in standings] for kind, (zh, _) in KINDS.items()}
            counts = {n: values for n, values in counts.items() if any(values)} or {"无 None": [0] * len(standings)}
            colors = {KINDS[kind][0]: color for kind, color in KIND_COLORS.items()}
            draw = lambda: stacked_bars(labels, counts, colors, "各单位问题 Items per site", horizontal=True, fmt=fmt)  # noqa: E731
        else:
            rows = figures["sites"] if name == "rates" else figures["trend"]
            rates = {zh: [getattr(row, key) for row in rows] for key, (zh, _) in RATES.items()}
            colors = {zh: color for zh, color in RATES.values()}
            if name == "rates":
                labels = [self._name(row.site) for row in rows]
                draw = lambda: rate_bars(labels, rates, colors, "各单位按时率 Rates per site", fmt=fmt)  # noqa: E731
            else:
                labels = [day[5:] for day in days]
                draw = lambda: rate_lines(labels, rates, colors, "按日趋势 Day by day", fmt=fmt)  # noqa: E731
        drawn = await asyncio.get_running_loop().run_in_executor(self.executor, draw)
        self._drawn[key] = drawn
        while len(self._drawn) > DRAWN_KEPT:
            del self._drawn[next(iter(self._drawn))]
        return drawn

    @staticmethod
    def outcome_names() -> dict[str, tuple[str, str]]:
        """Roll-call outcome labels."""
        return dict(LABELS)
