"""Benchmark: a province's year of records — 122 counties, a year of directives, incident reports, duty
reports and roll-calls (a few hundred thousand events) — and what the server does with them: start
(folding every log), search latency (p50/p99 over HTTP), the statistics dashboard and its charts,
memory. Each figure beside the same server over an empty log, measured in the same run.

The log is generated straight into the store (the embedded one, or Redis with `--store redis`), as
the domains would have written it; the server then starts over it in this process.

    .venv/bin/python -m bench.province_log [--store memory|redis] [--days 365] [--counties 122]

Targets: start < 10 s, search p99 < 200 ms, dashboard < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import argon2
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.app import build_services, create_app  # noqa: E402
from server.config import load_config  # noqa: E402
from server.cron import zone  # noqa: E402
from server.duty.days import day_of, deadline_of, shift_day  # noqa: E402
from server.store import MemoryStore, RedisStore, Store  # noqa: E402

SECRET = b"bench-secret-" + b"0" * 40
TZ = "Asia/Shanghai"
PLACES = ["青石镇", "白沙村", "临江大堤", "凤凰山", "云溪水库", "松河大桥", "湖阳开发区", "石门隧道", "江北码头", "南湖湿地",
          "东岭村", "西河乡", "北坡林场", "南港作业区", "黄泥岗"]
EVENTS = ["堤防渗水", "山体滑坡", "道路塌方", "化工厂泄漏", "森林火情", "内涝积水", "桥梁受损", "电力中断", "危房倒塌", "船只搁浅"]
ACTIONS = ["已转移群众", "已封闭道路", "已派出抢险队", "正在排查隐患", "已通知下游乡镇", "已启动应急预案", "请求增派力量"]
TYPES = ["flood", "fire", "geological", "traffic", "hazmat", "weather", "other"]


def config_text(counties: int, password_hash: str) -> str:
    """A province: its office (one user with every grant) and `counties` county-level units."""
    lines = [f'[city]\nname_zh = "江东省"\nname_en = "Jiangdong Province"\ntimezone = "{TZ}"\n',
             '[[sites]]\nid = "province"\nname_zh = "省应急管理厅"\nname_en = "Provincial Emergency Department"\nkind = "office"\n']
    for n in range(1, counties + 1):
        lines.append(f'[[sites]]\nid = "c{n:03d}"\nname_zh = "第{n}县"\nname_en = "County {n}"\nkind = "county"\nparent = "province"\n')
    lines.append('[[rooms]]\nid = "province"\nname_zh = "省级会商室"\nname_en = "Province room"\n')
    lines.append(f'[[users]]\nusername = "chief"\ndisplay_name = "省厅值班长"\nsite = "province"\n'
                 f'grants = ["publish", "subscribe", "moderate", "issue", "admin", "sign"]\npassword_hash = "{password_hash}"\n')
    return "\n".join(lines)


@dataclass
class Generator:
    """A year of the province's events, written to the store stream by stream in large appends."""

    store: Store
    counties: list[str]
    days: list[str]
    rng: random.Random
    directives_per_day: int
    recipients: int
    pending: dict[str, list[tuple[str, str, Mapping[str, object]]]] = field(default_factory=dict)
    last: dict[str, str | None] = field(default_factory=dict)
    count: int = 0
    phrases: list[str] = field(default_factory=list)  # texts written, to search for

    def text(self, n: int) -> str:
        """A report's text, like a county's (place, what, what was done)."""
        text = f"{self.rng.choice(PLACES)}{self.rng.choice(EVENTS)}，{self.rng.choice(ACTIONS)}{n}人"
        if self.rng.random() < 0.02:
            self.phrases.append(text)
        return text

    def add(self, stream: str, actor: str, kind: str, data: Mapping[str, object]) -> None:
        self.pending.setdefault(stream, []).append((actor, kind, data))
        self.count += 1

    async def flush(self, limit: int = 0) -> None:
        """Append what waits, per stream, in chunks of 2,000 (one round trip each)."""
        for stream, events in list(self.pending.items()):
            if len(events) < limit:
                continue
            for start in range(0, len(events), 2000):
                stored = await self.store.append_events_at(stream, self.last.get(stream), events[start:start + 2000])
                self.last[stream] = stored[-1].id
            del self.pending[stream]

    async def day(self, index: int, day: str) -> None:
        """One day of the province: directives and their answers, incidents, the 17:30 duty reports and roll-call."""
        tz = zone(TZ)
        morning = deadline_of(day, "08:30", tz)
        for n in range(self.directives_per_day):
            self.directive(f"d{index:03d}{n}", morning + n * 3600, "mandatory" if n == 0 else "guidance")
        for n in range(self.rng.randint(2, 6)):
            self.incident(f"i{index:03d}{n}", morning + 3600 + n * 1800)
        self.duty(day, deadline_of(day, "17:30", tz))
        self.rollcall(deadline_of(day, "17:00", tz))
        await self.flush(limit=2000)

    def directive(self, directive_id: str, at: float, cls: str) -> None:
        recipients = self.rng.sample(self.counties, self.recipients)
        ack_by = at + 1800
        self.add("command", "chief", "issued", {
            "directive_id": directive_id, "cls": cls, "title": f"关于{self.rng.choice(EVENTS)}的{['紧急通知', '工作部署'][cls == 'guidance']}",
            "body": self.text(len(directive_id)), "recipients": recipients, "site": "province", "ack_by": ack_by,
            "feedback_by": at + 86_000 if cls == "mandatory" else None, "t": at})
        for site in recipients:
            delay = self.rng.expovariate(1 / 600)
            if delay > 3 * 3600:
                self.add("command", "system", "overdue", {"directive_id": directive_id, "site": site, "obligation": "acknowledge",
                                                          "t": ack_by})
                continue
            self.add("command", f"duty-{site}", "acknowledged", {"directive_id": directive_id, "site": site, "t": at + delay})
            if cls == "mandatory":
                self.add("command", f"duty-{site}", "feedback", {"directive_id": directive_id, "site": site, "text": self.text(3),
                                                                "final": True, "t": at + delay + 3600})

    def incident(self, incident_id: str, at: float) -> None:
        site = self.rng.choice(self.counties)
        occurred = at - self.rng.expovariate(1 / 1800)
        base = {"incident_id": incident_id, "site": site, "casualties": {"dead": 0, "injured": self.rng.randint(0, 3), "missing": 0}}
        self.add("command", f"duty-{site}", "report_filed", {
            **base, "report_kind": "initial", "summary": self.text(len(incident_id)), "occurred_at": occurred,
            "place": self.rng.choice(PLACES), "type": self.rng.choice(TYPES), "chain": ["province"], "t": at})
        self.add("command", f"duty-{site}", "report_filed", {**base, "report_kind": "followup", "summary": self.text(7), "t": at + 3600})

    def duty(self, day: str, deadline: float) -> None:
        missing = []
        for site in self.counties:
            roll = self.rng.random()
            if roll < 0.03:
                missing.append(site)
                continue
            at = deadline - 600 if roll > 0.08 else deadline + 900
            if at > deadline:
                missing.append(site)  # missing at the deadline, filed after it
            self.add("duty", f"duty-{site}", "report_filed", {
                "site": site, "day": day, "officer": "值班员", "leader": "带班领导", "all_well": roll > 0.3,
                "incidents": [], "text": "" if roll > 0.3 else self.text(5), "deadline": deadline, "signed": True,
                "at": at if at <= deadline else at})
        self.add("duty", "system", "deadline_passed", {"day": day, "deadline": deadline, "missing": missing,
                                                      "escalated": dict.fromkeys(missing, "province"), "at": deadline})

    def rollcall(self, at: float) -> None:
        rollcall_id = uuid.uuid4().hex[:12]
        stream = f"rollcall:{rollcall_id}"
        title = "每日17:00视频点名"
        self.add("rollcalls", "chief", "created", {"id": rollcall_id, "at": at, "sites": self.counties, "title": title, "schedule": None})
        self.add(stream, "chief", "started", {"id": rollcall_id, "title": title, "mode": "all", "window": 60, "grace": 15,
                                              "sites": self.counties, "caller_site": "province", "room": None, "schedule": None, "at": at})
        self.add(stream, "server", "called", {"sites": self.counties, "at": at, "deadline": at + 60})
        for site in self.counties:
            if self.rng.random() < 0.95:
                self.add(stream, f"duty-{site}", "pressed", {"site": site, "at": at + self.rng.uniform(3, 70),
                                                             "video": self.rng.random() < 0.97, "identity": f"duty-{site}"})
        self.add(stream, "server", "window_ended", {"sites": self.counties, "at": at + 60})
        self.add(stream, "chief", "closed", {"at": at + 120, "reason": "done"})
        self.add("rollcalls", "chief", "closed", {"id": rollcall_id, "at": at + 120})


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Figures:
    """One server's measurements."""

    start: float = 0.0
    rss: float = 0.0
    first_search: float = 0.0  # right after start: it waits for the search index being built then
    search: list[float] = field(default_factory=list)
    dashboard: dict[str, float] = field(default_factory=dict)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(config_path: Path, store: Store, queries: list[str], days: list[str], data_dir: str) -> Figures:
    """Start a server over `store`, search and open the dashboard as the province's chief, stop it."""
    figures = Figures()
    config = load_config(config_path, env={"DATA_DIR": data_dir})
    before = rss_mb()
    started = time.perf_counter()
    services = build_services(config, secret=SECRET, store=store)
    runner = web.AppRunner(create_app(services))
    await runner.setup()
    figures.start = time.perf_counter() - started
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    figures.rss = rss_mb() - before
    user = config.user("chief")
    assert user is not None
    cookie = {"Cookie": f"cp_session={services.tokens.issue_session(user, 3600)}"}
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(headers=cookie) as http:
            for n, query in enumerate(queries):
                begun = time.perf_counter()
                async with http.get(f"{base}/search", params={"q": query}) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()
                if n == 0:
                    figures.first_search = time.perf_counter() - begun
                else:
                    figures.search.append(time.perf_counter() - begun)
            month = (days[-1][:8] + "01", days[-1])
            for label, path in (("page_month", f"/stats?from={month[0]}&to={month[1]}"),
                                ("charts_month", None),
                                ("charts_again", None),  # a second screen within the minute: drawn once
                                ("page_year", f"/stats?from={days[0]}&to={days[-1]}"),
                                ("review_year", f"/accountability?from={days[0]}&to={days[-1]}")):
                begun = time.perf_counter()
                paths = [path] if path else [f"/stats/{n}.svg?from={month[0]}&to={month[1]}" for n in ("duty", "sites", "rates", "trend")]
                for p in paths:
                    async with http.get(base + p) as resp:
                        assert resp.status == 200, await resp.text()
                        await resp.read()
                figures.dashboard[label] = time.perf_counter() - begun
    finally:
        await runner.cleanup()
    return figures


async def make_store(kind: str, prefix: str) -> Store:
    if kind == "redis":
        store: Store = RedisStore(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), node_id="bench", key_prefix=prefix)
    else:
        store = MemoryStore(node_id="bench")
    await store.start()
    return store


async def drop_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    async for key in client.scan_iter(f"{prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(14)
    counties = [f"c{n:03d}" for n in range(1, args.counties + 1)]
    today = day_of(time.time(), zone(TZ))
    days = [shift_day(today, -n) for n in range(args.days, 0, -1)]
    tmp = Path(tempfile.mkdtemp(prefix="province-log-"))
    config_path = tmp / "province.toml"
    config_path.write_text(config_text(args.counties, argon2.PasswordHasher().hash("bench")), encoding="utf-8")
    prefix = f"bench-province-{uuid.uuid4().hex[:8]}:"
    empty_prefix = prefix + "empty:"
    try:
        generator = Generator(await make_store(args.store, prefix), counties, days, rng, args.directives_per_day, args.recipients)
        begun = time.perf_counter()
        for index, day in enumerate(days):
            await generator.day(index, day)
        await generator.flush()
        generated = time.perf_counter() - begun
        print(f"generated {generator.count:,} events over {len(days)} days for {len(counties)} counties "
              f"in {generated:.1f} s ({generator.count / generated:,.0f} events/s) into {args.store}")
        queries = [*(rng.choice(generator.phrases)[2:8] for _ in range(args.queries // 2)),
                   *(rng.choice(EVENTS) for _ in range(args.queries - args.queries // 2))]
        if args.store == "redis":
            await generator.store.close()
            full_store = await make_store("redis", prefix)
        else:
            full_store = generator.store
        empty = await measure(config_path, await make_store(args.store, empty_prefix), queries, days, str(tmp / "empty"))
        full = await measure(config_path, full_store, queries, days, str(tmp / "full"))
    finally:
        if args.store == "redis":
            await drop_keys(prefix)
    report(empty, full, args)


def report(empty: Figures, full: Figures, args: argparse.Namespace) -> None:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:,.1f}x" if b > 0 else "—"

    print(f"{'':28}{'empty log':>12}{'province log':>14}{'ratio':>10}")
    rows = [("start (fold every log) s", empty.start, full.start),
            ("memory after start MB", empty.rss, full.rss),
            ("first search after start s", empty.first_search, full.first_search),
            ("search p50 ms", 1000 * pct(empty.search, 0.5), 1000 * pct(full.search, 0.5)),
            ("search p99 ms", 1000 * pct(empty.search, 0.99), 1000 * pct(full.search, 0.99)),
            ("search mean ms", 1000 * statistics.fmean(empty.search), 1000 * statistics.fmean(full.search))]
    rows += [(f"{label} s", empty.dashboard[label], full.dashboard[label]) for label in full.dashboard]
    for name, a, b in rows:
        print(f"{name:28}{a:12.3f}{b:14.3f}{ratio(b, a):>10}")
    dashboard = max(full.dashboard["page_month"], full.dashboard["page_year"])
    verdicts = [("start < 10 s", full.start < 10), ("search p99 < 200 ms", pct(full.search, 0.99) < 0.2),
                ("dashboard < 1 s", dashboard < 1.0)]
    print("targets: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("memory", "redis"), default="memory")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--counties", type=int, default=122)
    parser.add_argument("--directives-per-day", type=int, default=4)
    parser.add_argument("--recipients", type=int, default=60)
    parser.add_argument("--queries", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
