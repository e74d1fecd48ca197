"""`make bench`: the warm harvester at a region's scale (issue: one machine, 10,000 sources).

A simulated region (bench/simulated_region.py, in its own process: feeds on many hosts, a
t.me-like site, a VK-compatible API; 50–500 ms per answer) and the real `glas daemon` against
it for a few minutes. Prints, per scenario: collections per minute, the share of collections
started within their interval of their due time, lateness percentiles, collections still
waiting more than an interval when stopped, resident memory of the daemon and its workers
(peak) and their CPU. Then the CPU one RSS collection costs in a warm harvester (median and
90th percentile; a first collection with new items and an unchanged one) and the daemon's CPU
while nothing is due. Prints figures; asserts nothing.

    python bench/harvest.py            # both scenarios, ~12 minutes
    python bench/harvest.py --quick    # smaller and shorter, to try it
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TOKENS = "vk1.a.bench-token-one,vk1.a.bench-token-two"


@dataclass
class Scenario:
    sources: int
    every: str
    minutes: float


@dataclass
class Usage:
    """Resident memory and CPU of a process tree, sampled."""

    peak_rss: int = 0
    cpu: dict[int, float] = field(default_factory=dict)  # pid → CPU seconds, last seen

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


def tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def sample(root: int, usage: Usage) -> None:
    total = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
        usage.cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    usage.peak_rss = max(usage.peak_rss, total)


def start_region(workdir: Path, sources: int, every: str, latency: str = "0.05,0.5") -> tuple:
    out = workdir / "sources.yaml"
    sim = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "simulated_region.py"), str(sources), every,
         str(out), "--latency", latency],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while not out.exists():
        if sim.poll() is not None:
            raise SystemExit("the simulated region did not start")
        time.sleep(0.2)
    return sim, out


def run_daemon(workdir: Path, sources_yaml: Path, minutes: float) -> tuple[Usage, Path, float]:
    log = workdir / "daemon.log"
    env = {**os.environ, "VK_TOKEN": TOKENS}
    with log.open("w") as err:
        daemon = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "glas"), "daemon", "--log-json",
             "--sources", str(sources_yaml), "--db", str(workdir / "inbox.db")],
            cwd=workdir, env=env, stderr=err, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        usage = Usage()
        began = time.monotonic()
        end = began + minutes * 60
        while time.monotonic() < end:
            sample(daemon.pid, usage)
            time.sleep(2)
        sample(daemon.pid, usage)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    return usage, log, time.monotonic() - began


def report(scenario: Scenario, usage: Usage, log: Path, wall: float, intervals: float) -> None:
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    runs = [e for e in events if "late" in e and e.get("event") != "backlog"]
    lates = sorted(e["late"] for e in runs)
    stopping = next((e for e in events if e.get("event") == "daemon stopping"), {})
    overdue = int(stopping.get("overdue") or 0)
    on_time = sum(late < intervals for late in lates)
    failed = sum(e["status"] == "failed" for e in runs)
    per_minute = len(runs) / (wall / 60)
    due = len(runs) + overdue

    def pct(q: float) -> float:
        return lates[min(len(lates) - 1, int(q * len(lates)))] if lates else 0.0

    print(
        f"{scenario.sources:>6,} sources every {scenario.every:<3} for {wall / 60:.1f} min: "
        f"{per_minute:,.0f} collections/min ({per_minute / 60:.1f}/s); on time "
        f"{on_time / max(1, due):.1%} of {due:,} due ({overdue} still waiting past their "
        f"interval); late p50 {pct(0.5):.2f}s p90 {pct(0.9):.2f}s p99 {pct(0.99):.2f}s "
        f"max {lates[-1] if lates else 0:.1f}s; failed {failed}"
    )
    kinds = sorted({e["source"].rsplit("-", 1)[0] for e in runs})
    by_kind = []
    for kind in kinds:
        mine = sorted(e["late"] for e in runs if e["source"].rsplit("-", 1)[0] == kind)
        p99 = mine[min(len(mine) - 1, int(0.99 * len(mine)))]
        by_kind.append(f"{kind} {len(mine):,} (late p99 {p99:.2f}s)")
    print(f"{'':>6}  by type: {', '.join(by_kind)}")
    print(
        f"{'':>6}  daemon + workers: peak {usage.peak_rss / 1e6:,.0f} MB resident, CPU "
        f"{usage.cpu_seconds:,.0f} s over {wall:,.0f} s ({usage.cpu_seconds / wall:.0%} of a core)"
    )


def idle_cpu(workdir: Path, sources: int) -> None:
    """The daemon with ``sources`` configured and none due: CPU and memory at rest."""
    sim, yaml = start_region(workdir, sources, "1d")
    try:
        log = workdir / "idle.log"
        with log.open("w") as err:
            daemon = subprocess.Popen(
                [sys.executable, str(ROOT / "bin" / "glas"), "daemon", "--log-json",
                 "--sources", str(yaml), "--db", str(workdir / "idle.db")],
                cwd=workdir, env={**os.environ, "VK_TOKEN": TOKENS}, stderr=err,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while "worker ready" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(10)
            before = Usage()
            sample(daemon.pid, before)
            time.sleep(30)
            after = Usage()
            sample(daemon.pid, after)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        spent = after.cpu_seconds - before.cpu_seconds
        print(
            f"idle daemon with {sources:,} sources (none due): CPU {spent / 30:.2%} of a core, "
            f"{after.peak_rss / 1e6:,.0f} MB resident (daemon + worker)"
        )
    finally:
        sim.kill()


def cpu_per_collection(workdir: Path, sources: int) -> None:
    """CPU of one RSS collection in a warm harvester (this process; the sites in another)."""
    from crawler import reactor
    from crawler.config import load_config
    from crawler.harvester import Harvester
    from storage import open_inbox

    sim, yaml = start_region(workdir, sources, "15m", latency="0,0")
    try:
        text = yaml.read_text()
        feeds = [line for line in text.splitlines() if "type: rss" in line]
        head = text.split("sources:\n", 1)[0].replace(
            "timeout: 20", "timeout: 20\n  request_delay: 0s"
        )
        only = workdir / "feeds.yaml"
        only.write_text(head + "sources:\n" + "\n".join(feeds) + "\n")
        config = load_config(only)
        inbox = open_inbox(str(workdir / "cpu.db"))
        harvester = Harvester(config, inbox)

        async def rounds() -> list[list[float]]:
            await harvester.open()
            spent: list[list[float]] = []
            for _ in range(2):
                costs = []
                for source in config.sources:
                    began = time.process_time()
                    await harvester.collect(source)
                    costs.append(time.process_time() - began)
                spent.append(costs)
            await harvester.close()
            return spent

        first, again = reactor.run(rounds)
        inbox.close()
        for label, costs in (("first collection (10 new items)", first), ("again", again)):
            costs.sort()
            median, p90 = statistics.median(costs), costs[int(0.9 * len(costs))]
            print(
                f"CPU per RSS collection, warm, {label}: median {median * 1000:.1f} ms, "
                f"p90 {p90 * 1000:.1f} ms ({len(costs)} feeds)"
            )
    finally:
        sim.kill()


def scenario_run(scenario: Scenario, keep: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="glas-bench-") as tmp:
        workdir = keep or Path(tmp)
        sim, yaml = start_region(workdir, scenario.sources, scenario.every)
        try:
            from crawler.validators import parse_duration

            interval = parse_duration(scenario.every).total_seconds()
            usage, log, wall = run_daemon(workdir, yaml, scenario.minutes)
            report(scenario, usage, log, wall, interval)
        finally:
            sim.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller and shorter scenarios")
    parser.add_argument("--only", choices=("region", "fast", "cpu", "idle"), help="one part")
    parser.add_argument("--keep", type=Path, help="keep the daemon's log and inbox in this folder")
    args = parser.parse_args()
    print(f"== warm harvester (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)")
    scenarios = (
        [Scenario(1_000, "15m", 1.5), Scenario(200, "1m", 1.5)]
        if args.quick
        else [Scenario(10_000, "15m", 5), Scenario(1_000, "1m", 3)]
    )
    for scenario, part in zip(scenarios, ("region", "fast"), strict=True):
        if args.only in (None, part):
            scenario_run(scenario, args.keep)
    if args.only in (None, "cpu"):
        with tempfile.TemporaryDirectory(prefix="glas-bench-") as tmp:
            cpu_per_collection(Path(tmp), 100 if args.quick else 300)
    if args.only in (None, "idle"):
        with tempfile.TemporaryDirectory(prefix="glas-bench-") as tmp:
            idle_cpu(Path(tmp), 1_000 if args.quick else 10_000)


if __name__ == "__main__":
    main()
