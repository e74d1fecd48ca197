"""The ``glas`` command: a thin layer over the library; errors become one clean line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from crawler import __version__

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
LOGGERS = ("glas.daemon", "glas.run", "glas.cluster")  # glas's events, logged at info
DEFAULT_SOURCES = "sources.yaml"
DEFAULT_DB = "inbox.db"


class CliError(Exception):
    """An error for the operator: printed as one line, exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _Reported(CliError):
    """A CliError whose text is printed as it is (already in ``file:line:`` form)."""


# -- commands ---------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from crawler.tables import format_table

    config = _config(args)
    rows: list[tuple[str, ...]] = [("id", "type", "schedule", "municipality", "enabled")]
    for s in config.sources:
        schedule = s.schedule
        when = ""
        if schedule is not None:
            when = f"cron {schedule.cron}" if schedule.cron else f"every {_human(schedule.every)}"
        rows.append((s.id, s.type, when, s.municipality or "", "yes" if s.enabled else "no"))
    print(format_table(rows))
    enabled = len(config.enabled)
    print(f"{config.path}: ok, {len(config.sources)} sources ({enabled} enabled)")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from crawler.config import json_schema

    json.dump(json_schema(), sys.stdout, ensure_ascii=False, indent=2)
    print()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from crawler.lock import source_locks
    from crawler.report import RunReporter
    from crawler.runner import UnknownSource, due_sources, named_sources, run_sources

    config = _config(args)
    _check_privacy_key(config)
    try:
        named = named_sources(config, args.source) if args.source else None
    except UnknownSource as exc:
        raise CliError(str(exc), EXIT_CONFIG) from None
    reporter = RunReporter(interactive=args.progress, log=args.log_json)
    with _inbox(args) as inbox:
        now = datetime.now(UTC)
        if named is not None:
            sources = named
        elif args.all:
            sources = config.enabled
        else:
            sources = due_sources(config, inbox, now)
        if not sources:
            print(_nothing_due(config, inbox, now))
            _deliver_alerts(config, inbox)
            return EXIT_OK
        with source_locks(args.db) as locks:
            summary = run_sources(config, inbox, sources, reporter, locks=locks)
        reporter.summary(summary)
        _deliver_alerts(config, inbox)
    return summary.exit_code


def _deliver_alerts(config: Any, inbox: Any) -> None:
    """At the end of ``glas run``: send the alerts due to the webhooks (what fails stays in
    the outbox for the next run or the daemon); one line when there was something to send."""
    if not config.webhooks:
        return
    from crawler.webhooks import deliver_due

    delivered = failed = 0
    for _ in range(20):  # at most 1,000 deliveries per run
        done = deliver_due(inbox, config.webhooks)
        delivered, failed = delivered + done.delivered, failed + done.failed
        if done.delivered + done.failed < 50:
            break
    if delivered or failed:
        retry = f", {failed} to retry later" if failed else ""
        print(f"webhooks: {delivered} alert deliveries sent{retry}", flush=True)


def _delivery(row: dict[str, Any]) -> str:
    if row["delivered_at"]:
        return f"{row['webhook_id']} sent"
    return f"{row['webhook_id']} pending ({row['attempts']} tries)"


def cmd_alerts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from crawler.alerts import utc
    from crawler.tables import format_table
    from crawler.validators import parse_duration
    from crawler.webhooks import payload

    since = None
    if args.since:
        try:
            since = utc(datetime.now(UTC) - parse_duration(args.since))
        except ValueError:
            try:
                moment = datetime.fromisoformat(args.since)
            except ValueError:
                raise CliError(
                    f"--since {args.since!r}: give a duration (24h, 7d) or a date (2026-05-01)",
                    EXIT_CONFIG,
                ) from None
            since = utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    with _inbox(args, create=False) as inbox:
        alerts = inbox.alerts(since)
    if args.json:
        rows = [{**payload(a), "deliveries": a["deliveries"]} for a in alerts]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
        return EXIT_OK
    if not alerts:
        print("no alerts" + (f" since {since}" if since else ""))
        return EXIT_OK
    table: list[tuple[str, ...]] = [
        ("alert", "rule", "fired at", "scope", "residents", "usual", "cases", "webhooks")
    ]
    for a in alerts:
        scope = " / ".join(str(a[k]) for k in ("topic", "place", "municipality") if a.get(k))
        hooks = ", ".join(_delivery(d) for d in a["deliveries"])
        usual = "" if a["usual_level"] is None else f"{a['usual_level']:g}"
        cases = ", ".join(map(str, (a.get("cases") or [])[:5]))
        table.append(
            (
                str(a["alert_id"]),
                a["rule_id"],
                a["fired_at"],
                scope,
                str(a["residents"]),
                usual,
                cases,
                hooks,
            )
        )
    print(format_table(table))
    return EXIT_OK


def _nothing_due(config: Any, inbox: Any, now: Any) -> str:
    from crawler.health import due_at

    if not config.enabled:
        return f"glas run: no source is enabled in {config.path}"
    rows = {r["source_id"]: r for r in inbox.source_health(now)}
    when, first = min((due_at(s, config.defaults, rows.get(s.id)), s.id) for s in config.enabled)
    return (
        f"glas run: nothing is due; next: {first} at {when.strftime('%Y-%m-%d %H:%M:%SZ')} "
        "(--all collects every enabled source now)"
    )


def cmd_daemon(args: argparse.Namespace) -> int:
    from crawler.daemon import Daemon, DaemonError

    _check_privacy_key(_config(args))  # a broken file stops here, with every problem listed
    try:
        daemon = Daemon(
            args.sources,
            args.db,
            stop_grace=args.stop_grace,
            verbose=args.verbose,
            debug=args.debug,
            log_json=args.log_json,
        )
        return daemon.run()
    except DaemonError as exc:
        raise CliError(str(exc)) from None


def cmd_worker(args: argparse.Namespace) -> int:
    from crawler.cluster import ClusterError, main

    _check_privacy_key(_config(args))  # a broken file stops here, with every problem listed
    try:
        return main(args.sources, args.db, args.heartbeat, args.parallel)
    except ClusterError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from None


def cmd_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from crawler.health import TROUBLE, assess
    from crawler.schedule import backlog, backlog_line
    from crawler.tables import format_table

    config = _config(args)
    now = datetime.now(UTC)
    with _inbox(args, create=False) as inbox:
        health_rows = inbox.source_health(now)
        cluster = _cluster_lines(inbox)
    report = assess(config, health_rows, now)
    trouble = any(h.state in TROUBLE for h in report)
    if args.json:
        json.dump([h.as_dict() for h in report], sys.stdout, ensure_ascii=False, indent=2)
        print()
        return EXIT_FAILED if trouble else EXIT_OK
    rows: list[tuple[str, ...]] = [
        ("source", "state", "last run", "last success", "failures", "posts 24h", "next due")
    ]
    for h in report:
        rows.append(
            (
                h.source_id,
                h.label,
                _when(h.last_run_at, now),
                _when(h.last_success_at, now),
                str(h.consecutive_failures),
                str(h.posts_24h),
                "" if h.state in ("disabled", "removed") else _when(h.next_due, now, ahead=True),
            )
        )
    print(format_table(rows))
    for h in report:
        if h.last_error and h.state not in ("ok", "silent"):
            print(f"{h.source_id}: last error: {h.last_error}")
    counts: dict[str, int] = {}
    for h in report:
        counts[h.state] = counts.get(h.state, 0) + 1
    print(f"{len(report)} sources: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    by_source = {row["source_id"]: row for row in health_rows}
    late, oldest = backlog(config.sources, config.defaults, by_source, now)
    if late:
        print(f"backlog: {backlog_line(late, oldest)} (the harvester is not keeping up)")
    for line in cluster:
        print(line)
    return EXIT_FAILED if trouble else EXIT_OK


def _cluster_lines(inbox: Any) -> list[str]:
    """The workers and backlog of ``glas worker`` on a PostgreSQL inbox (none on SQLite)."""
    if getattr(inbox, "dialect", "") != "postgresql":
        return []
    from crawler.cluster_status import lines

    return lines(inbox.conn)


def _when(value: Any, now: Any, *, ahead: bool = False) -> str:
    """A time as ``12:00:05Z (5m ago)`` (with the date when not today); a due time already
    passed is ``now``."""
    if value is None:
        return ""
    delta = (value - now) if ahead else (now - value)
    if ahead and delta.total_seconds() <= 0:
        return "now"
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or unit == "s":
            span = f"{seconds // size}{unit}"
            break
    text = value.strftime("%H:%M:%SZ" if value.date() == now.date() else "%Y-%m-%d %H:%MZ")
    return f"{text} (in {span})" if ahead else f"{text} ({span} ago)"


def cmd_import(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from crawler.config import check_timezone
    from crawler.importer import ImportFailed, import_file
    from crawler.model import SourceConfig

    path = Path(args.file)
    try:
        check_timezone(args.timezone)
    except ValueError as exc:
        raise CliError(f"--timezone: {exc}", EXIT_CONFIG) from None
    try:  # the same rules as source ids in sources.yaml
        SourceConfig(id=args.source_id, type="import")
    except ValidationError:
        raise CliError(
            f"--source-id {args.source_id!r}: use letters, digits, '-', '_' and '.' "
            "(at most 80, starting with a letter or digit)",
            EXIT_CONFIG,
        ) from None
    if not path.is_file():
        raise CliError(f"{path}: no such file", EXIT_CONFIG)
    config = _config_if_present(args)
    with _inbox(args) as inbox:
        try:
            result = import_file(
                inbox,
                path,
                fmt=args.format,
                source_id=args.source_id,
                timezone=args.timezone,
                dedupe=config.dedupe if config else None,
                flagging=config.flagging if config else None,
                lexicon_base=config.path.parent if config else None,
                privacy=config.privacy if config else None,
            )
        except ImportFailed as exc:
            for message in exc.messages:
                print(message, file=sys.stderr)
            return EXIT_CONFIG
    print(f"{path}: {result.new} new, {result.updated} updated, {result.unchanged} unchanged")
    return EXIT_OK


def _check_privacy_key(config: Any) -> None:
    """With ``privacy.pseudonymise_authors`` on, a missing key stops before any source runs."""
    if not config.privacy.pseudonymise_authors:
        return
    from crawler.pseudonymise import PseudonymKeyMissing, load_key

    try:
        load_key(config.privacy.key_env)
    except PseudonymKeyMissing as exc:
        raise CliError(f"{config.path}: privacy: {exc}", EXIT_CONFIG) from None


def _config_if_present(args: argparse.Namespace) -> Any:
    """sources.yaml when there is one (its pipeline settings apply to imports too), else None."""
    return _config(args) if Path(args.sources).exists() else None


def cmd_export(args: argparse.Namespace) -> int:
    import threading

    from crawler.exports import plan, pseudonymiser
    from crawler.pseudonymise import PseudonymKeyMissing
    from storage.export import CsvWriter, GeoJsonWriter, JsonArrayWriter, Writer, export

    if args.format in ("open311", "geojson") and args.table in ("posts", "alerts"):
        raise CliError(
            f"--format {args.format} exports cases: leave out --table {args.table}", EXIT_CONFIG
        )
    if args.table == "alerts" and (args.pseudonymise or args.complaints_only):
        raise CliError(
            "--table alerts holds no residents or complaint flags: leave out "
            "--pseudonymise and --complaints-only",
            EXIT_CONFIG,
        )
    config = _config_if_present(args)
    try:
        pseudonymise = pseudonymiser(config) if args.pseudonymise else None
    except PseudonymKeyMissing as exc:
        raise CliError(f"--pseudonymise: {exc}", EXIT_CONFIG) from None
    with _inbox(args, create=False) as inbox:
        how = plan(
            inbox,
            fmt=args.format,
            table=args.table or "posts",
            complaints_only=args.complaints_only,
            config=config,
            pseudonymise=pseudonymise,
        )
        stop = threading.Event() if args.follow else None
        out: TextIO
        with _output(args.output, stream=args.follow) as out, _stopping(stop):
            writer: Writer
            if args.format == "csv":
                writer = CsvWriter(out, how.columns)
            elif args.format == "open311" and not args.follow:
                writer = JsonArrayWriter(out)
            elif args.format == "geojson" and not args.follow:
                writer = GeoJsonWriter(out)
            else:  # jsonl; open311 and geojson while following: one request or Feature a line
                writer = Writer(out)
            count = export(
                inbox,
                writer,
                table=how.table,
                since_seq=args.since_seq,
                complaints_only=how.complaints_only,
                limit=args.limit,
                transform=how.transform,
                follow=stop,
                interval=args.interval,
            )
    if args.output:
        print(f"{args.output}: {count} rows", file=sys.stderr)
    return EXIT_OK


class _stopping:
    """While following: SIGINT and SIGTERM set ``event`` (the export then ends cleanly)."""

    def __init__(self, event: Any) -> None:
        self.event = event
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> None:
        import signal

        if self.event is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, lambda *_: self.event.set())

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def cmd_stats(args: argparse.Namespace) -> int:
    from crawler.tables import format_table

    with _inbox(args, create=False) as inbox:
        stats = inbox.stats()
    if args.json:
        json.dump(stats, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
        return EXIT_OK
    print(
        f"{stats['posts']} posts in {stats['clusters']} cases "
        f"({stats['clusters_repeated']} seen more than once); last seq {stats['last_seq']}"
    )
    sections: list[tuple[str, list[dict[str, Any]], tuple[str, ...]]] = [
        (
            "By source",
            stats["by_source"],
            ("source_id", "platform", "posts", "newest", "last_status", "last_run_at"),
        ),
        ("By platform", stats["by_platform"], ("platform", "posts")),
        ("By day (UTC, last 14 days with posts)", stats["by_day"], ("day", "posts")),
        ("Largest cases", stats["largest_clusters"], ("cluster_id", "size", "sources", "title")),
        (
            "Last runs",
            stats["last_runs"],
            ("source_id", "started_at", "status", "new", "updated", "unchanged", "error"),
        ),
    ]
    for title, rows, columns in sections:
        if not rows:
            continue
        print(f"\n{title}")
        table = [columns] + [tuple(_cell(row.get(c)) for c in columns) for row in rows]
        print(format_table(table))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from crawler import situation
    from crawler.routing import topic_labels
    from crawler.validators import parse_duration

    config = _config_if_present(args)
    zone = config.defaults.timezone if config else "Europe/Moscow"
    try:
        length = parse_duration(args.period) if args.period else None
    except ValueError as exc:
        raise CliError(f"--period: {exc}", EXIT_CONFIG) from None
    try:
        period = situation.period_of(args.since, args.until, length, zone=zone)
    except situation.PeriodError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from None
    lexicons = config.flagging.lexicon_paths(config.path.parent) if config else ()
    with _inbox(args, create=False) as inbox:
        report = situation.build(
            inbox,
            period,
            zone=zone,
            municipality=args.municipality,
            norms=config.norms if config else None,
            routing=config.routing if config else None,
            labels=topic_labels(lexicons),
            recurrence_days=args.recurrence_days,
        )
    output = args.output or ("report.html" if args.format == "html" else None)
    with _output(output) as out:
        if args.format == "json":
            json.dump(report, out, ensure_ascii=False, indent=2)
            out.write("\n")
        else:
            from crawler.situation_html import render

            out.write(render(report))
    if output:
        totals = report["totals"]
        print(
            f"{output}: {totals['residents']} residents, {totals['cases']} cases, "
            f"{report['overdue_total']} overdue ({report['period']['since']} … "
            f"{report['period']['until']})"
        )
    return EXIT_OK


def cmd_browse(args: argparse.Namespace) -> int:
    import tempfile

    from crawler import browse
    from storage import sqlite_path

    path = sqlite_path(args.db)
    if path is None:
        raise CliError(
            "glas browse opens SQLite inboxes (Datasette reads SQLite only); for PostgreSQL "
            "use a client such as psql, or export with glas export",
            EXIT_CONFIG,
        )
    if not browse.available():
        raise CliError(
            "glas browse needs Datasette: pip install 'glas[browse]' (make setup installs it)",
            EXIT_CONFIG,
        )
    with _inbox(args, create=False):
        pass  # the inbox exists and its schema is this Glas's
    with tempfile.TemporaryDirectory(prefix="glas-browse-") as tmp:
        meta = Path(tmp) / "metadata.json"
        meta.write_text(json.dumps(browse.metadata(path.stem), ensure_ascii=False), "utf-8")
        print(f"glas browse: {path} at http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
        argv = browse.command(path, meta, args.host, args.port, args.open)
        import contextlib

        from datasette.cli import cli  # in this process: stopping glas stops the server

        with contextlib.suppress(KeyboardInterrupt):
            cli.main(args=argv, prog_name="datasette", standalone_mode=False)
        return EXIT_OK


def cmd_telegram_login(args: argparse.Namespace) -> int:
    from crawler.telegram_login import login_command

    return login_command(args)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage import open_inbox

    with open_inbox(args.db, check_schema=False) as inbox:
        before = inbox.schema_version()
        applied = inbox.upgrade()
        after = inbox.schema_version()
    if applied:
        for name in applied:
            print(f"applied {name}")
        print(f"{args.db}: schema version {before} → {after}")
    else:
        print(f"{args.db}: schema is up to date (version {after})")
    return EXIT_OK


# -- helpers ----------------------------------------------------------------------------------
def _config(args: argparse.Namespace) -> Any:
    from crawler.config import ConfigError, load_config

    if Path(args.sources).is_dir():
        raise CliError(
            f"{args.sources}: is a directory, not a file (give --sources PATH)", EXIT_CONFIG
        )
    if not Path(args.sources).is_file():
        raise CliError(
            f"{args.sources}: no such file (give --sources PATH or set GLAS_SOURCES)", EXIT_CONFIG
        )
    try:
        return load_config(args.sources)
    except ConfigError as exc:
        text = "\n".join(exc.messages)
        if len(exc.messages) > 1:
            text += f"\n{args.sources}: {len(exc.messages)} problems"
        raise _Reported(text, EXIT_CONFIG) from None


def _inbox(args: argparse.Namespace, *, create: bool = True) -> Any:
    from storage import open_inbox

    return open_inbox(args.db, create=create)


class _output:
    """stdout, or a file written whole (a temporary name renamed at the end); with
    ``stream`` (``--follow``) the file itself, written as rows come.

    A new file gets the mode of :mod:`crawler.filemode` (0600 unless ``GLAS_FILE_MODE``); a
    file written over keeps its mode. A place that cannot be written is a CliError."""

    def __init__(self, path: str | None, *, stream: bool = False) -> None:
        self.path = Path(path) if path else None
        self.stream = stream

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        directory = self.path.parent
        if not directory.is_dir():
            problem = "does not exist" if not directory.exists() else "is not a directory"
            raise CliError(f"--output: directory {directory} {problem}", EXIT_CONFIG)
        if self.path.is_dir():
            raise CliError(f"--output: {self.path} is a directory", EXIT_CONFIG)
        self.tmp = self.path if self.stream else self.path.with_name(self.path.name + ".part")
        try:
            fd = self._open(self.path, self.tmp)
        except OSError as exc:
            raise CliError(
                f"--output: cannot write {self.path}: {exc.strerror}", EXIT_CONFIG
            ) from None
        self.fh = open(fd, "w", encoding="utf-8", newline="")
        return self.fh

    @staticmethod
    def _open(path: Path, tmp: Path) -> int:
        """``tmp`` empty and open for writing, with the mode ``path`` has or is to have."""
        from crawler.filemode import create_file

        flags = os.O_WRONLY | os.O_TRUNC
        if tmp == path and path.exists():
            return os.open(tmp, flags)
        mode = path.stat().st_mode & 0o777 if path.exists() else None
        tmp.unlink(missing_ok=True)  # a .part left by a killed export
        return create_file(tmp, flags, mode)

    def __exit__(self, kind: type | None, exc: BaseException | None, *rest: object) -> None:
        if self.path is None:
            sys.stdout.flush()
            return
        try:
            self.fh.close()
        except OSError as error:
            kind, exc = type(error), error
        if not self.stream:
            if kind is None:
                self.tmp.replace(self.path)
            else:
                self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise CliError(f"--output: cannot write {self.path}: {exc.strerror or exc}") from None


def _human(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "…"


# -- parser -----------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, found {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, found {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--sources",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"sources file (env GLAS_SOURCES; default {DEFAULT_SOURCES})",
    )
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"inbox: a file, sqlite:///path or postgresql://… (env GLAS_DB; default {DEFAULT_DB})",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more log output (-vv for debug)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of internal errors",
    )
    common.add_argument(
        "--log-json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log one JSON object a line (time, level, source, event, counts, duration, error)",
    )

    parser = argparse.ArgumentParser(
        prog="glas",
        parents=[common],
        description="Harvest residents' complaints from VK, Telegram and the web into an inbox.",
    )
    parser.add_argument("--version", action="version", version=f"glas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, func: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    command("check", cmd_check, "validate sources.yaml and list the sources")
    command("schema", cmd_schema, "print the JSON Schema of sources.yaml")

    p = command("run", cmd_run, "collect every due source once (cron mode) and exit")
    p.add_argument(
        "--source", action="append", metavar="ID", help="collect this source now, due or not"
    )
    p.add_argument(
        "--all", action="store_true", help="collect every enabled source now, due or not"
    )
    progress = p.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="progress and a table even without a terminal",
    )
    progress.add_argument(
        "--quiet",
        dest="progress",
        action="store_false",
        help="only warnings and the summary line, as under cron",
    )

    p = command("import", cmd_import, "load posts from a JSONL or CSV file in the Post shape")
    p.add_argument("file", help="the file to import")
    p.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name")
    p.add_argument(
        "--source-id", default="import", help="source_id of rows that have none (default: import)"
    )
    p.add_argument(
        "--timezone",
        default="Europe/Moscow",
        help="zone of times written without an offset (default: Europe/Moscow)",
    )

    p = command("export", cmd_export, "write posts or cases changed after a seq")
    p.add_argument(
        "--format",
        choices=("jsonl", "csv", "open311", "geojson"),
        default="jsonl",
        help="jsonl (default), csv, open311: cases as GeoReport v2 requests (a JSON array; "
        "one request a line with --follow), or geojson: cases with coordinates as a "
        "FeatureCollection (one Feature a line with --follow)",
    )
    p.add_argument(
        "--since-seq",
        type=int,
        default=0,
        metavar="N",
        help="only rows with seq > N (default 0: everything)",
    )
    p.add_argument(
        "--complaints-only", action="store_true", help="skip rows flagged as not a complaint"
    )
    p.add_argument(
        "--table",
        choices=("posts", "clusters", "alerts"),
        help="posts (default), clusters (cases) or alerts",
    )
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N rows")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep going: write rows committed later as they come, until SIGINT or SIGTERM",
    )
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=2.0,
        metavar="SECONDS",
        help="with --follow, how often to look for new rows (default 2)",
    )
    p.add_argument(
        "--pseudonymise",
        action="store_true",
        help="residents' author ids as keyed hashes (key in GLAS_PSEUDONYM_KEY); no author "
        "names, item links or personal fields of raw (official accounts stay named)",
    )

    p = command("alerts", cmd_alerts, "surge alerts fired, with their webhook deliveries")
    p.add_argument(
        "--since", metavar="WHEN", help="fired within this long (24h, 7d) or since a date"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("daemon", cmd_daemon, "collect every source on its own schedule until stopped")
    p.add_argument(
        "--stop-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long workers may take to record their collections before they "
        "are killed (default 10)",
    )

    p = command(
        "worker",
        cmd_worker,
        "one of several harvesters sharing a PostgreSQL inbox (cluster mode), until stopped",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between two heartbeats; a worker silent 3 times as long is taken for "
        "dead and its collections are done again by the others (default 10)",
    )
    p.add_argument(
        "--parallel",
        type=_positive_int,
        metavar="N",
        help="collections this worker runs at once (default: defaults.parallel)",
    )

    p = command("status", cmd_status, "health of every source: last run, failures, silence")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("stats", cmd_stats, "posts per source, platform and day; cases; last runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command(
        "report",
        cmd_report,
        "the situation picture: heat map, tension points, answers against the norm, recurrence",
    )
    p.add_argument("--since", metavar="ISO", help="start of the period (date or time)")
    p.add_argument("--until", metavar="ISO", help="end of the period (default: now)")
    p.add_argument(
        "--period", metavar="DURATION", help="length of the period before --until (default 7d)"
    )
    p.add_argument("--municipality", metavar="NAME", help="only this municipality")
    p.add_argument(
        "--format", choices=("html", "json"), default="html", help="html (default) or json"
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write to FILE (default: report.html; JSON goes to stdout)",
    )
    p.add_argument(
        "--recurrence-days",
        type=_positive_int,
        default=30,
        metavar="N",
        help="a problem raised again within N days after an official answer recurs (default 30)",
    )

    p = command("browse", cmd_browse, "open the inbox in Datasette (the browse extra)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    p.add_argument("--open", action="store_true", help="open a web browser at the address")

    db = sub.add_parser("db", help="inbox schema maintenance", parents=[common])
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", parents=[common], help="create or migrate the inbox schema")
    up.set_defaults(func=cmd_db_upgrade)

    tg = sub.add_parser("telegram", help="Telegram account set-up", parents=[common])
    tg_sub = tg.add_subparsers(dest="telegram_command", metavar="ACTION", required=True)
    login = tg_sub.add_parser(
        "login", parents=[common], help="log in and print a session string for TELEGRAM_SESSION"
    )
    login.set_defaults(func=cmd_telegram_login)
    return parser


def _resolve(args: argparse.Namespace) -> None:
    args.sources = (
        getattr(args, "sources", None) or os.environ.get("GLAS_SOURCES") or DEFAULT_SOURCES
    )
    args.db = getattr(args, "db", None) or os.environ.get("GLAS_DB") or DEFAULT_DB
    args.verbose = getattr(args, "verbose", 0)
    args.debug = getattr(args, "debug", False)
    args.log_json = getattr(args, "log_json", False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(
    verbose: int, debug: bool, *, json_lines: bool = False, daemon: bool = False
) -> None:
    """Warnings on stderr (``-v`` info, ``-vv`` debug); the daemon and ``--log-json`` log
    each source's outcome, so they start at info. Every record is redacted of secrets."""
    from crawler.secrets import RedactingFilter

    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2 or debug:
        level = logging.DEBUG
    events = min(level, logging.INFO) if json_lines or daemon else level  # glas's own records
    handler = _StderrHandler()
    handler.addFilter(RedactingFilter())  # first: no secret reaches a formatter
    if events < level:  # glas's events at info; other libraries' records at the usual level
        handler.addFilter(lambda r: r.levelno >= level or r.name in LOGGERS)
    handler.setLevel(events)  # Scrapy resets its loggers' levels; the handler has the last word
    if json_lines:
        from crawler.report import JsonFormatter

        handler.setFormatter(JsonFormatter())
    elif daemon:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("glas: %(name)s: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    # Scrapy's and Twisted's own accounts (retries given up, DNS failures, robots.txt errors,
    # tracebacks) repeat what the source's one line already says: -v shows their warnings,
    # --debug everything.
    quiet = logging.DEBUG if debug else logging.WARNING if verbose else logging.CRITICAL + 1
    libraries = ("scrapy", "twisted", "py.warnings", "glas.hub", "asyncio")
    libraries += ("procrastinate",)
    for name in libraries:
        logging.getLogger(name).setLevel(quiet)
    # Scrapy sets its loggers' levels again when a crawler starts: the handler decides too.
    handler.addFilter(lambda r: r.levelno >= quiet or not r.name.startswith(libraries))
    logging.getLogger("glas.collect").setLevel(logging.ERROR if level >= logging.WARNING else level)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(events)
    # APScheduler's own lines (job added, a run skipped while the last one goes on) are noise.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    _resolve(args)
    setup_logging(
        args.verbose,
        args.debug,
        json_lines=args.log_json,
        daemon=args.command in ("daemon", "worker"),
    )
    from crawler.filemode import FileModeError, file_mode
    from storage import InboxError

    try:
        file_mode()  # a bad GLAS_FILE_MODE stops every command before it writes anything
        return args.func(args)
    except _Reported as exc:
        _say(str(exc))
        return exc.code
    except CliError as exc:
        _say(f"glas: {exc}")
        return exc.code
    except FileModeError as exc:
        _say(f"glas: {exc}")
        return EXIT_CONFIG
    except InboxError as exc:
        _say(f"glas: inbox: {exc}")
        return EXIT_FAILED
    except _database_errors() as exc:  # locked past its timeout, disk full, server gone
        _say(f"glas: inbox: {args.db}: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("glas: interrupted; what was stored so far is kept")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            import traceback

            _say(traceback.format_exc().rstrip())
        _say(
            f"glas: internal error: {type(exc).__name__}: {exc}"
            + ("" if args.debug else " (run with --debug for details)")
        )
        return 70


def _database_errors() -> tuple[type[BaseException], ...]:
    """The errors of the inbox's database drivers: an operational problem, not a Glas bug."""
    import sqlite3

    import psycopg

    return (sqlite3.Error, psycopg.Error)


def _say(text: str) -> None:
    """Print a message for the operator on stderr, with every known secret redacted."""
    from crawler.secrets import redact

    print(redact(text), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
