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
from server.stats.charts import stacked_bars
from server.stats.domain import directive_stats, duty_by_day, rollcall_outcomes

STATUS_COLORS: Final[dict[str, str]] = {"filed": "#22c55e", "late": "#f59e0b", "missing": "#ef4444", "draft": "#3b82f6", "pending": "#64748b"}
KIND_COLORS: Final[dict[str, str]] = dict(zip(KINDS, ("#ef4444", "#f59e0b", "#a855f7", "#3b82f6", "#06b6d4", "#f97316", "#eab308")))


class StatsService:
    """Counts and charts of a period, read from the folds the accountability records read."""

    def __init__(self, accountability: AccountabilityService, tree: SiteTree) -> None:
        self.accountability = accountability
        self.tree = tree
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stats-chart")  # see charts.py

    def close(self) -> None:
        """Stop the chart thread."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def figures(self, days: list[str]) -> dict[str, Any]:
        """The period's numbers: duty reports per day and state, directives, incidents, roll-call outcomes, items."""
        duty, command = self.accountability.duty, self.accountability.command
        start = deadline_of(days[0], "00:00", duty.zone)
        end = deadline_of(shift_day(days[-1], 1), "00:00", duty.zone)
        incidents = [i for i in command.board.incidents.values() if i.reports and start <= i.reports[0].at < end]
        items = await self.accountability.items(days)
        return {
            "duty": duty_by_day(duty.book, duty.reporting, days, duty.deadline, duty.clock.now()),
            "directives": directive_stats(command.ledger.directives.values(), start, end),
            "incidents": len(incidents), "incidents_late": sum(i.late for i in incidents),
            "rollcalls": rollcall_outcomes(await self.accountability.rollcalls.history(limit=10_000), start, end),
            "standings": self.accountability.ranking(items),
        }

    async def duty_chart(self, days: list[str]) -> str:
        """Duty reports per day, stacked by state."""
        figures = await self.figures(days)
        series = {f"{STATUS_NAMES[s][0]} {STATUS_NAMES[s][1]}": v for s, v in figures["duty"].items() if any(v)}
        colors = {f"{STATUS_NAMES[s][0]} {STATUS_NAMES[s][1]}": c for s, c in STATUS_COLORS.items()}
        labels = [day[5:] for day in days]
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: stacked_bars(labels, series, colors, "每日值班报告 Daily duty reports"))

    async def sites_chart(self, days: list[str]) -> str:
        """Accountability items per reporting site, stacked by kind, fewest first."""
        standings = (await self.figures(days))["standings"]
        labels = [self.tree.get(s.site).name_zh if s.site in self.tree else s.site for s in standings]
        series = {f"{zh}": [s.counts[kind] for s in standings] for kind, (zh, _) in KINDS.items()}
        series = {name: values for name, values in series.items() if any(values)} or {"无 None": [0] * len(standings)}
        colors = {KINDS[kind][0]: color for kind, color in KIND_COLORS.items()}
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: stacked_bars(labels, series, colors, "各单位问题 Items per site", horizontal=True))

    @staticmethod
    def outcome_names() -> dict[str, tuple[str, str]]:
        """Roll-call outcome labels."""
        return dict(LABELS)
