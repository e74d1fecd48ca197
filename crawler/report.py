"""What ``glas run`` prints: progress and a table on a terminal, one line under cron; and
the JSON log lines of ``--log-json``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from crawler.model import SourceConfig
from crawler.runner import RunSummary
from crawler.secrets import redact
from crawler.tables import format_table
from storage.inbox import RunRecord

log = logging.getLogger("glas.run")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``source``, ``event``, ``message`` and the
    fields a record carries in ``extra={"glas": {...}}`` (counts, ``duration``, ``error``)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        data: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "source": None,
            "event": None,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, "glas", None) or {}).items():
            if value is not None or key in ("source", "event"):
                data[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            data["error"] = redact(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        return json.dumps(data, ensure_ascii=False, default=str)


class RunReporter:
    """Progress per source when interactive; otherwise only warnings and a summary line.

    With ``log=True`` (``--log-json``) each source's outcome is a log record instead.
    """

    def __init__(
        self,
        *,
        interactive: bool | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        log: bool = False,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.interactive = self.out.isatty() if interactive is None else interactive
        self.log = log
        if log:
            self.interactive = False

    def skipped(self, source_id: str, pid: str) -> None:
        """A source another process is collecting right now."""
        text = f"{source_id}: skipped: being collected by pid {pid}"
        if self.log:
            fields = {"event": "skipped", "source": source_id, "pid": pid}
            log.warning(text, extra={"glas": fields})
        else:
            print(f"glas: {text}", file=self.err)

    def started(self, source: SourceConfig) -> None:
        if self.interactive:
            print(f"  … {source.id} ({source.type})", file=self.err, flush=True)

    def finished(self, record: RunRecord) -> None:
        if self.log:
            _log_record(record)  # the log handler's filter redacts secrets
            return
        error = redact(record.error) if record.error else None
        warnings = [redact(w) for w in record.warnings]
        if self.interactive:
            mark = {"ok": "ok", "interrupted": "STOPPED"}.get(record.status, "FAILED")
            stored = record.stored
            line = (
                f"  {mark:6} {record.source_id}: {stored.new} new, {stored.updated} updated, "
                f"{stored.unchanged} unchanged in {record.duration:.1f}s"
            )
            if error:
                line += f" — {error}"
            print(line, file=self.err, flush=True)
            for warning in warnings:
                print(f"         warning: {warning}", file=self.err)
            return
        if error:
            print(f"glas: {record.source_id}: failed: {error}", file=self.err)
        elif record.status == "interrupted":
            print(
                f"glas: {record.source_id}: interrupted before it finished "
                "(what was stored is kept; the next run starts from the last saved cursor)",
                file=self.err,
            )
        for warning in warnings:
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


def _log_record(record: RunRecord) -> None:
    stored = record.stored
    fields = {
        "event": "collected" if record.status == "ok" else record.status,
        "source": record.source_id,
        "status": record.status,
        "new": stored.new,
        "updated": stored.updated,
        "unchanged": stored.unchanged,
        "invalid": record.invalid,
        "duration": round(record.duration, 3),
        "error": record.error,
        "warnings": record.warnings,
    }
    text = (
        f"{record.source_id}: {record.status}: {stored.new} new, {stored.updated} updated, "
        f"{stored.unchanged} unchanged in {record.duration:.1f}s"
    )
    if record.error:
        text += f": {record.error}"
    log.log(
        logging.INFO if record.status == "ok" else logging.WARNING, text, extra={"glas": fields}
    )
