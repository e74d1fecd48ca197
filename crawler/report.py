"""What ``glas run`` prints: progress and a table on a terminal, one line under cron."""

from __future__ import annotations

import sys
from typing import TextIO

from crawler.model import SourceConfig
from crawler.runner import RunSummary
from crawler.tables import format_table
from storage.inbox import RunRecord


class RunReporter:
    """Progress per source when interactive; otherwise only warnings and a summary line."""

    def __init__(
        self,
        *,
        interactive: bool | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.interactive = self.out.isatty() if interactive is None else interactive

    def started(self, source: SourceConfig) -> None:
        if self.interactive:
            print(f"  … {source.id} ({source.type})", file=self.err, flush=True)

    def finished(self, record: RunRecord) -> None:
        if self.interactive:
            mark = {"ok": "ok", "interrupted": "STOPPED"}.get(record.status, "FAILED")
            stored = record.stored
            line = (
                f"  {mark:6} {record.source_id}: {stored.new} new, {stored.updated} updated, "
                f"{stored.unchanged} unchanged in {record.duration:.1f}s"
            )
            if record.error:
                line += f" — {record.error}"
            print(line, file=self.err, flush=True)
            for warning in record.warnings:
                print(f"         warning: {warning}", file=self.err)
            return
        if record.error:
            print(f"glas: {record.source_id}: failed: {record.error}", file=self.err)
        elif record.status == "interrupted":
            print(
                f"glas: {record.source_id}: interrupted before it finished "
                "(what was stored is kept; the next run starts from the last saved cursor)",
                file=self.err,
            )
        for warning in record.warnings:
            print(f"glas: {record.source_id}: warning: {warning}", file=self.err)

    def summary(self, summary: RunSummary) -> None:
        if self.interactive and summary.records:
            print(file=self.out)
            print(table(summary.records), file=self.out)
        print(summary_line(summary), file=self.out, flush=True)


def summary_line(summary: RunSummary) -> str:
    total = summary.totals
    failed = len(summary.failed)
    stopped = len(summary.interrupted)
    sources = len(summary.records)
    counts = f"{sources - failed - stopped} ok, {failed} failed"
    if stopped:
        counts += f", {stopped} interrupted"
    line = (
        f"glas run: {sources} source{'s' if sources != 1 else ''}, {counts}; "
        f"{total.new} new, {total.updated} updated, "
        f"{total.unchanged} unchanged in {summary.duration:.1f}s"
    )
    if failed:
        line += f" (failed: {', '.join(r.source_id for r in summary.failed)})"
    if stopped:
        line += f" (interrupted: {', '.join(r.source_id for r in summary.interrupted)})"
    return line


def table(records: list[RunRecord]) -> str:
    header = ("source", "status", "new", "updated", "unchanged", "invalid", "seconds")
    rows = [header] + [
        (
            r.source_id,
            r.status,
            str(r.stored.new),
            str(r.stored.updated),
            str(r.stored.unchanged),
            str(r.invalid),
            f"{r.duration:.1f}",
        )
        for r in sorted(records, key=lambda r: r.source_id)
    ]
    return format_table(rows)
