"""``glas daemon``: every enabled source on its own schedule, around the clock.

APScheduler 3 (a BlockingScheduler) holds one job per source. A job runs the collection as a
child process (``glas run --source ID``: Scrapy's reactor runs once per process, and a crash
or a hang stays in the child), in its own process group, stopped when the source's
``run_limit`` passes. The daemon re-reads sources.yaml on SIGHUP or when the file changes
and keeps the old config when the new one is invalid; SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from crawler import health
from crawler.config import Config, ConfigError, load_config
from crawler.lock import LockHeld, daemon_lock, source_locks
from crawler.model import SourceConfig
from storage import open_inbox

log = logging.getLogger("glas.daemon")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # holds crawler/: what children import
POLL = 2.0  # seconds between checks of sources.yaml
KILL_GRACE = 5.0  # after the second SIGTERM, seconds before SIGKILL
RELOAD_JOB = "_reload"


class DaemonError(Exception):
    """The daemon cannot start (another daemon holds the inbox)."""


@dataclass
class Child:
    """A collection running as a child process."""

    source_id: str
    process: subprocess.Popen[str]
    started: datetime


def _event(event: str, source: str | None = None, **fields: Any) -> dict[str, Any]:
    """``extra=`` of a log record: what ``--log-json`` writes beside the message."""
    return {"glas": {"event": event, "source": source, **fields}}


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Daemon:
    """Schedules every enabled source of ``sources_path`` into the inbox at ``db``."""

    def __init__(
        self, sources_path: str, db: str, *, stop_grace: float = 20.0, verbose: int = 0
    ) -> None:
        self.path = Path(sources_path)
        self.db = db
        self.stop_grace = stop_grace
        self.verbose = verbose
        self.stopping = threading.Event()
        self.hangup = threading.Event()
        self.children: dict[str, Child] = {}
        self.launched: dict[str, datetime] = {}  # when this daemon last started each source
        self.lock = threading.Lock()
        self.config: Config | None = None
        self.fingerprints: dict[str, str] = {}
        self.digest: str | None = None
        self.stamp: tuple[int, int] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="glas-daemon-"))
        self.snapshot = self.workdir / "sources.yaml"  # the config children read: last valid
        self.scheduler: BlockingScheduler | None = None

    # -- life cycle -----------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit status (0 after a clean stop)."""
        lock = daemon_lock(self.db)
        try:
            lock.acquire()
        except LockHeld as exc:
            raise DaemonError(
                f"another glas daemon (pid {exc.pid}) is running on this inbox "
                f"({lock.where}); stop it first"
            ) from None
        try:
            return self._run()
        finally:
            lock.release()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> int:
        data = self.path.read_bytes()
        config = load_config(self.path)  # ConfigError: the CLI reports it, exit 2
        with open_inbox(self.db) as inbox:  # creates or checks the schema before any child
            inbox.sync_sources(config.sources)
        self.scheduler = BlockingScheduler(
            executors={
                "default": ThreadPoolExecutor(config.defaults.parallel),
                "control": ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._adopt(config, data)
        self.scheduler.add_job(
            self.poll,
            "interval",
            seconds=POLL,
            id=RELOAD_JOB,
            executor="control",
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        log.info(
            "started: %d sources scheduled from %s (pid %d)",
            len(config.enabled),
            self.path,
            os.getpid(),
            extra=_event("daemon started", sources=len(config.enabled), pid=os.getpid()),
        )
        if not self.stopping.is_set():
            self.scheduler.start()  # returns once _on_stop has shut it down
        self._stop_children()
        log.info("stopped", extra=_event("daemon stopped"))
        return 0

    def _on_stop(self, signum: int, frame: Any) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info(
            "%s: stopping (%d collections running)",
            signal.Signals(signum).name,
            len(self.children),
            extra=_event("daemon stopping", running=sorted(self.children)),
        )
        # Not from the handler itself: the main thread may be inside the scheduler's loop.
        threading.Thread(target=self._shutdown, name="glas-stop", daemon=True).start()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a signal during start-up: once it runs
            try:
                assert self.scheduler is not None
                self.scheduler.shutdown(wait=False)
                return
            except SchedulerNotRunningError:
                time.sleep(0.05)

    def _on_hangup(self, signum: int, frame: Any) -> None:
        self.hangup.set()  # the next poll (within POLL seconds) reloads

    def _stop_children(self) -> None:
        """SIGTERM to every running collection (each stores what it has and ends), then wait."""
        with self.lock:
            children = list(self.children.values())
        for child in children:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        while time.monotonic() < deadline and any(c.process.poll() is None for c in children):
            time.sleep(0.05)
        for child in children:
            if child.process.poll() is None:
                log.warning(
                    "%s: still running %.0fs after SIGTERM: stopping it at once",
                    child.source_id,
                    self.stop_grace,
                    extra=_event("killed", child.source_id),
                )
                _stop_process(child.process)
        deadline = time.monotonic() + KILL_GRACE + 5
        while self.children and time.monotonic() < deadline:  # let the jobs record the outcome
            time.sleep(0.05)

    # -- the config -------------------------------------------------------------------------
    def poll(self) -> None:
        """Reload sources.yaml when it changed (or on SIGHUP); keep the old one when invalid."""
        try:
            self._poll()
        except Exception as exc:
            log.debug("reloading failed", exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                "%s: could not reload: %s",
                self.path,
                error,
                extra=_event("config invalid", error=error),
            )

    def _poll(self) -> None:
        forced = self.hangup.is_set()
        self.hangup.clear()
        try:
            info = self.path.stat()
        except OSError as exc:
            if forced or self.stamp is not None:
                log.error(
                    "%s: cannot read (%s); keeping the sources already scheduled",
                    self.path,
                    exc.strerror,
                    extra=_event("config invalid", error=str(exc.strerror)),
                )
            self.stamp = None
            return
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self.stamp and not forced:
            return
        self.stamp = stamp
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() == self.digest:
            if forced:
                log.info("%s: unchanged", self.path, extra=_event("config unchanged"))
            return
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            self.digest = hashlib.sha256(data).hexdigest()  # reported once, not every poll
            for message in exc.messages:
                log.error(message, extra=_event("config invalid", error=message))
            log.error(
                "%s: invalid (%d problem%s); keeping the sources already scheduled",
                self.path,
                len(exc.messages),
                "" if len(exc.messages) == 1 else "s",
                extra=_event("config invalid", problems=len(exc.messages)),
            )
            return
        if self.path.read_bytes() != data:
            self.stamp = None  # changed while being read: look again at the next poll
            return
        self._adopt(config, data)

    def _adopt(self, config: Config, data: bytes) -> None:
        """Make ``config`` the one children read and schedule its sources."""
        part = self.snapshot.with_name("sources.yaml.part")
        part.write_bytes(data)
        part.replace(self.snapshot)
        self.digest = hashlib.sha256(data).hexdigest()
        old = self.fingerprints
        defaults = config.defaults.model_dump_json()
        new = {s.id: s.model_dump_json() + defaults for s in config.enabled}
        first = self.config is None
        if self.config is not None and self.config.defaults.parallel != config.defaults.parallel:
            log.warning(
                "defaults.parallel: the new value takes effect when the daemon restarts",
                extra=_event("config reloaded"),
            )
        self.config, self.fingerprints = config, new
        added = [i for i in new if i not in old]
        removed = [i for i in old if i not in new]
        changed = [i for i in new if i in old and old[i] != new[i]]
        rows = self._health_rows()
        assert self.scheduler is not None
        for source_id in removed + changed:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(source_id)
        for source_id in added + changed:
            self._schedule(config.source(source_id), rows.get(source_id))
        if not first:
            parts = [
                f"{word} {', '.join(ids)}"
                for word, ids in (("added", added), ("removed", removed), ("changed", changed))
                if ids
            ]
            log.info(
                "%s reloaded: %s",
                self.path,
                "; ".join(parts) or "no source changed",
                extra=_event("config reloaded", added=added, removed=removed, changed=changed),
            )

    def _schedule(self, source: SourceConfig, row: dict[str, Any] | None) -> None:
        assert self.scheduler is not None and self.config is not None
        defaults = self.config.defaults
        now = datetime.now(UTC)
        first = max(
            now, health.due_at(source, defaults, row, reference=self.launched.get(source.id))
        )
        self.scheduler.add_job(
            self.collect,
            health.trigger(source, defaults),
            id=source.id,
            name=source.id,
            args=[source.id],
            next_run_time=first,
        )
        log.debug(
            "%s: scheduled, first run at %s",
            source.id,
            first.strftime("%H:%M:%S"),
            extra=_event("scheduled", source.id, first=first.isoformat()),
        )

    def _health_rows(self, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
        with open_inbox(self.db) as inbox:
            rows = inbox.source_health(datetime.now(UTC), source_ids=only)
        return {r["source_id"]: r for r in rows}

    # -- one collection ---------------------------------------------------------------------
    def collect(self, source_id: str) -> None:
        """A job: collect one source in a child process unless it is backing off."""
        try:
            self._collect(source_id)
        except Exception as exc:  # the inbox unreadable, no more processes: log, go on
            log.debug("%s: job failed", source_id, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                "%s: could not collect: %s",
                source_id,
                error,
                extra=_event("error", source_id, error=error),
            )

    def _collect(self, source_id: str) -> None:
        config = self.config
        if self.stopping.is_set() or config is None or source_id not in self.fingerprints:
            return
        try:
            source = config.source(source_id)
        except KeyError:  # removed by a reload just now
            return
        now = datetime.now(UTC)
        row = self._health_rows([source_id]).get(source_id)
        normal = health.interval(source, config.defaults, now)
        reference = self.launched.get(source_id)
        if not health.is_due(
            source, config.defaults, row, now, reference=reference, early=normal / 2
        ):
            log.debug(
                "%s: backing off (%s consecutive failures)",
                source_id,
                row.get("consecutive_failures") if row else 0,
                extra=_event("backing off", source_id),
            )
            return
        limit = source.run_limit or config.defaults.run_limit
        started = now.replace(microsecond=0)
        with self.lock:
            if self.stopping.is_set():
                return
            process = subprocess.Popen(
                self._command(source_id),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self._child_env(),
                start_new_session=True,  # its own process group: stopped whole, signals kept off
            )
            self.children[source_id] = Child(source_id, process, started)
            self.launched[source_id] = now
        log.debug(
            "%s: started (pid %d)", source_id, process.pid, extra=_event("started", source_id)
        )
        try:
            try:
                _, err = process.communicate(timeout=limit.total_seconds())
            except subprocess.TimeoutExpired:
                _stop_process(process)
                process.communicate()
                error = f"stopped after {_human(limit)}: run_limit exceeded"
                with open_inbox(self.db) as inbox:
                    inbox.abandon_runs(source_id, process.pid, error, started)
                log.error(
                    "%s: %s",
                    source_id,
                    error,
                    extra=_event("stopped", source_id, error=error, duration=_seconds(now)),
                )
                return
            self._report(source_id, process, started, now, err)
        finally:
            with self.lock:
                self.children.pop(source_id, None)

    def _command(self, source_id: str) -> list[str]:
        command = [sys.executable, "-m", "crawler.cli", "run", "--source", source_id]
        command += ["--sources", str(self.snapshot), "--db", self.db, "--quiet"]
        return command + ["-v"] * min(self.verbose, 2)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    def _report(
        self,
        source_id: str,
        process: subprocess.Popen[str],
        started: datetime,
        began: datetime,
        err: str,
    ) -> None:
        """One log line per run the child recorded (or why it recorded none)."""
        for line in err.splitlines():
            log.debug("%s: child: %s", source_id, line, extra=_event("output", source_id))
        with open_inbox(self.db) as inbox:
            runs = inbox.runs_of(source_id, process.pid, started)
            if any(run["status"] == "running" for run in runs):
                self._close_dead_runs(inbox, source_id)
                runs = inbox.runs_of(source_id, process.pid, started)
        for run in runs:
            self._log_run(source_id, run, began)
        if runs:
            return
        lines = [line for line in err.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {process.returncode}"
        if self.stopping.is_set():
            log.info(
                "%s: stopped with the daemon before it began",
                source_id,
                extra=_event("interrupted", source_id),
            )
            return
        if "skipped: being collected by pid" in last:
            log.info(last.removeprefix("glas: "), extra=_event("skipped", source_id, error=last))
            return
        log.error(
            "%s: the collection ended without a record (exit status %s): %s",
            source_id,
            process.returncode,
            last,
            extra=_event("crashed", source_id, error=last, duration=_seconds(began)),
        )

    def _log_run(self, source_id: str, run: dict[str, Any], launched: datetime) -> None:
        status = run["status"]
        counts = {k: run.get(k) or 0 for k in ("new", "updated", "unchanged", "invalid")}
        warnings = json.loads(run["warnings"]) if run.get("warnings") else []
        duration = run.get("duration_seconds")
        fields = _event(
            "collected" if status == "ok" else status,
            source_id,
            status=status,
            launched=launched.isoformat(timespec="milliseconds"),
            **counts,
            duration=duration,
            error=run.get("error"),
            warnings=warnings,
        )
        text = (
            f"{source_id}: {status}: {counts['new']} new, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged"
        )
        if duration is not None:
            text += f" in {duration:.1f}s"
        if run.get("error"):
            text += f": {run['error']}"
        quiet = status == "ok" or (status == "interrupted" and self.stopping.is_set())
        log.log(logging.INFO if quiet else logging.WARNING, text, extra=fields)
        for warning in warnings:
            log.warning(
                "%s: warning: %s",
                source_id,
                warning,
                extra=_event("warning", source_id, error=warning),
            )

    def _close_dead_runs(self, inbox: Any, source_id: str) -> None:
        """The child died without closing its run (SIGTERM before Scrapy took over the signal,
        a crash): close it as interrupted, under the source's lock so no live run is touched."""
        with source_locks(self.db) as locks:
            if not locks.take([source_id]):
                inbox.close_interrupted_runs([source_id])


def _seconds(since: datetime) -> float:
    return round((datetime.now(UTC) - since).total_seconds(), 3)


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _stop_process(process: subprocess.Popen[str]) -> None:
    """Stop a collection at once: SIGTERM twice (Scrapy's second one is immediate), SIGKILL
    after KILL_GRACE; what it committed stays."""
    for _ in range(2):
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
            return
    try:
        process.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()
