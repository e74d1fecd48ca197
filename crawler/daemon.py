"""``glas daemon``: every enabled source on its own schedule, around the clock.

The daemon schedules; long-lived worker processes (:mod:`crawler.worker`, ``defaults.workers``
of them) harvest, each with its state warm (lexicons, models, the near-duplicate index, the
shared crawler, API sessions) and many collections at once. The daemon keeps one queue of
sources by due time (:class:`crawler.schedule.Queue`: earliest due first, at most
``parallel`` running per worker and ``per_site`` per site; a site's collections always go to
one worker at a time, so its politeness holds). It logs every outcome, and how late the
backlog is when the workers cannot keep up ("412 collections late, oldest 6m").

A worker that dies is started again and its collections in progress are recorded
interrupted; one whose memory passes ``worker_memory`` is replaced between collections; one
that does not end a collection at its ``run_limit`` is killed and replaced. The daemon re-reads
sources.yaml on SIGHUP or when the file changes (keeping the old config when the new one is
invalid); SIGTERM or SIGINT stop it within seconds, every running collection recorded
interrupted with what it had stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler import health
from crawler.config import Config, ConfigError, load_config
from crawler.lock import LockHeld, daemon_lock, source_locks
from crawler.model import SourceConfig
from crawler.schedule import (
    Plan,
    Queue,
    backlog_line,
    first_due,
    human,
    late_after,
    next_due,
)
from storage import open_inbox

log = logging.getLogger("glas.daemon")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # holds crawler/: what workers import
POLL = 2.0  # seconds between checks of sources.yaml
BACKLOG_CHECK = 5.0  # seconds between two looks at how late the queue is
BACKLOG_EVERY = 60.0  # seconds between two backlog lines while collections stay late
MEMORY_EVERY = 5.0  # seconds between two readings of the workers' memory
STUCK_GRACE = 30.0  # seconds past run_limit before a worker is taken for stuck and killed
DRAIN_LIMIT = 60.0  # seconds a worker being replaced may take to finish its collections
RESTART_MAX = 60.0  # longest wait before starting again a worker that keeps dying
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from crawler.worker import main; " + (
    "sys.exit(main(sys.argv[2:]))"
)


class DaemonError(Exception):
    """The daemon cannot start (another daemon holds the inbox)."""


def _event(event: str, source: str | None = None, **fields: Any) -> dict[str, Any]:
    """``extra=`` of a log record: what ``--log-json`` writes beside the message."""
    return {"glas": {"event": event, "source": source, **fields}}


@dataclass
class Running:
    """A collection a worker is doing."""

    source_id: str
    site: str
    plan: Plan
    launched: datetime
    began: float  # monotonic
    limit: float  # seconds


@dataclass
class Worker:
    """A worker process and what the daemon knows of it."""

    number: int
    slot: int  # its place among defaults.workers: the sites whose home it is
    process: subprocess.Popen[bytes]
    sock: socket.socket
    began: float = field(default_factory=time.monotonic)
    state: str = "starting"  # starting | ready | draining | stopping
    running: dict[str, Running] = field(default_factory=dict)
    rss: int = 0
    drain_since: float = 0.0
    stopped: bool = False  # said "stopped": every run it had is recorded

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(json.dumps(message).encode() + b"\n")


class Daemon:
    """Schedules every enabled source of ``sources_path`` into the inbox at ``db``."""

    def __init__(
        self,
        sources_path: str,
        db: str,
        *,
        stop_grace: float = 10.0,
        verbose: int = 0,
        debug: bool = False,
        log_json: bool = False,
    ) -> None:
        self.path = Path(sources_path)
        self.db = db
        self.stop_grace = stop_grace
        self.flags = ["--verbose", str(verbose)] + ["--debug"] * debug + ["--log-json"] * log_json
        self.events: queue.SimpleQueue[tuple[Worker | None, dict[str, Any] | None]] = (
            queue.SimpleQueue()
        )
        self.stopping = False
        self.hangup = False
        self.config: Config | None = None
        self.queue: Queue | None = None
        self.workers: list[Worker] = []
        self.site_owner: dict[str, Worker] = {}
        self.plans: dict[str, Plan] = {}
        self.failures: dict[str, int] = {}
        self.gone: dict[str, bool] = {}
        self.grace: dict[str, float] = {}  # seconds after which a waiting one is late
        self.intervals: dict[str, float] = {}  # seconds of each source's schedule
        self.fingerprints: dict[str, str] = {}
        self.shared = ""  # fingerprint of what is not a source (defaults, sites, …)
        self.digest: str | None = None
        self.stamp: tuple[int, int] | None = None
        self.rng = random.Random()
        self.numbers = iter(range(1, 1_000_000))
        self.deaths: list[float] = []
        self.restart_at = 0.0
        self.late_logged: float | None = None  # when the backlog was last logged
        self.loading = False  # a changed sources.yaml is being read
        self.waiting_sites: set[str] = set()  # held until their worker is ready
        self.workdir = Path(tempfile.mkdtemp(prefix="glas-daemon-"))
        self.snapshot = self.workdir / "sources.yaml"  # the config workers read: last valid

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
            with open_inbox(self.db) as inbox:  # creates or checks the schema first
                self.inbox = inbox
                return self._run()
        finally:
            lock.release()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> int:
        data = self.path.read_bytes()
        config = load_config(self.path)  # ConfigError: the CLI reports it, exit 2
        self.queue = Queue(config.defaults.parallel * config.defaults.workers)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        self._adopt(config, data)
        for slot in range(config.defaults.workers):
            self._start_worker(slot)
        threading.Thread(target=self._deliver, name="glas-webhooks", daemon=True).start()
        log.info(
            "started: %d sources scheduled from %s, %d worker%s (pid %d)",
            len(config.enabled),
            self.path,
            config.defaults.workers,
            "" if config.defaults.workers == 1 else "s",
            os.getpid(),
            extra=_event(
                "daemon started",
                sources=len(config.enabled),
                pid=os.getpid(),
                workers=config.defaults.workers,
            ),
        )
        polled = checked = memory_at = time.monotonic()
        while not self.stopping:
            self._wait()
            now = time.monotonic()
            if self.stopping:
                break
            if self.hangup or now - polled >= POLL:
                polled = now
                self.poll()
            self._watch(now)
            if now - memory_at >= MEMORY_EVERY:
                memory_at = now
                self._check_memory()
            self._dispatch()
            if now - checked >= BACKLOG_CHECK:
                checked = now
                self._log_backlog(now)
        self._shutdown()
        log.info("stopped", extra=_event("daemon stopped"))
        return 0

    def _deliver(self) -> None:
        """A thread: send due alerts to the webhooks of the current config, continuously."""
        from crawler.webhooks import keep_delivering

        def wait(seconds: float) -> bool:
            time.sleep(seconds)
            return self.stopping

        if not self.stopping:
            keep_delivering(
                self.db, lambda: self.config.webhooks if self.config is not None else [], wait
            )

    def _on_stop(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.signum = signum
        self.events.put((None, None))  # wake the loop (SimpleQueue.put is reentrant)

    def _on_hangup(self, signum: int, frame: Any) -> None:
        self.hangup = True
        self.events.put((None, None))

    def _wait(self) -> None:
        """Handle what the workers said; wait for the next due time, a message or a signal."""
        timeout = POLL
        assert self.queue is not None
        due = self.queue.next_due()
        if due is not None and any(w.state == "ready" for w in self.workers):
            timeout = min(timeout, max(0.0, due - time.time()))
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            worker, message = item
            if worker is not None:
                self._handle(worker, message)
            elif message is not None and message.get("ev") == "loaded":
                self._loaded(message)
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return

    def _shutdown(self) -> None:
        """Stop every worker (each records its collections interrupted), then reap them."""
        name = signal.Signals(getattr(self, "signum", signal.SIGTERM)).name
        running = sorted(r for w in self.workers for r in w.running)
        assert self.queue is not None
        overdue, _ = self.queue.late(time.time(), self.intervals)
        log.info(
            "%s: stopping (%d collections running)",
            name,
            len(running),
            extra=_event("daemon stopping", running=running, overdue=overdue),
        )
        for worker in self.workers:
            worker.state = "stopping"
            worker.send({"op": "stop"})
        deadline = time.monotonic() + self.stop_grace
        while self.workers and time.monotonic() < deadline:
            try:
                worker, message = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if worker is not None:
                self._handle(worker, message)
            for gone in [w for w in self.workers if w.stopped]:
                self._reap(gone, wait=1.0)
        for worker in list(self.workers):
            log.warning(
                "worker %d (pid %d) still running %.0fs after the stop: killed",
                worker.number,
                worker.pid,
                self.stop_grace,
                extra=_event("killed", pid=worker.pid),
            )
            self._reap(worker, wait=0)
            for source_id in worker.running:
                self._close_dead_run(source_id)

    # -- workers ----------------------------------------------------------------------------
    def _start_worker(self, slot: int) -> None:
        parent, child = socket.socketpair()
        command = [sys.executable, "-I", "-c", BOOT, str(PACKAGE_ROOT), "--fd", str(child.fileno())]
        command += ["--sources", str(self.snapshot), "--db", self.db, *self.flags]
        process = subprocess.Popen(
            command,
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the terminal's Ctrl-C is ours
        )
        child.close()
        worker = Worker(next(self.numbers), slot, process, parent)
        self.workers.append(worker)
        threading.Thread(
            target=self._listen, args=(worker,), name=f"glas-worker-{worker.number}", daemon=True
        ).start()
        log.debug(
            "worker %d started (pid %d)",
            worker.number,
            worker.pid,
            extra=_event("worker started", pid=worker.pid),
        )

    def _listen(self, worker: Worker) -> None:
        """A thread per worker: its messages into the daemon's queue; None when it ends."""
        with contextlib.suppress(OSError), worker.sock.makefile("rb") as lines:
            for line in lines:
                try:
                    self.events.put((worker, json.loads(line)))
                except ValueError:
                    continue
        self.events.put((worker, None))

    def _handle(self, worker: Worker, message: dict[str, Any] | None) -> None:
        if worker not in self.workers:
            return
        if message is None:
            self._ended(worker)
            return
        event = message.get("ev")
        if event == "ready":
            worker.rss = int(message.get("rss") or 0)
            if worker.state == "starting":
                worker.state = "ready"
            assert self.queue is not None
            for site in self.waiting_sites:  # those still without a worker wait again
                self.queue.release(site)
            self.waiting_sites.clear()
            log.info(
                "worker %d ready in %.1fs (pid %d, %s resident)",
                worker.number,
                time.monotonic() - worker.began,
                worker.pid,
                _megabytes(worker.rss),
                extra=_event("worker ready", pid=worker.pid, rss=worker.rss),
            )
        elif event == "finished":
            worker.rss = int(message.get("rss") or worker.rss)
            self._finished(worker, message["source"], message["record"])
        elif event == "skipped":
            self._skipped(worker, message["source"], str(message.get("holder")))
        elif event == "stopped":
            worker.stopped = True
            worker.running.clear()

    def _ended(self, worker: Worker) -> None:
        """A worker's socket closed: it stopped, or it died (its collections interrupted)."""
        code = self._reap(worker, wait=5.0)
        if worker.state == "stopping" or worker.stopped:
            return
        interrupted = sorted(worker.running)
        for source_id, running in list(worker.running.items()):
            self._close_dead_run(source_id)
            self._release(worker, running)
            self._plan_next(source_id, running, status="interrupted")
        if worker.state == "draining" and not interrupted and code == 0:
            return
        log.error(
            "worker %d (pid %d) died (%s); %d collection%s interrupted%s",
            worker.number,
            worker.pid,
            _exit_text(code),
            len(interrupted),
            "" if len(interrupted) == 1 else "s",
            f": {', '.join(interrupted)}" if interrupted else "",
            extra=_event("worker died", pid=worker.pid, interrupted=interrupted, code=code),
        )
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < 60] + [now]
        wait = min(RESTART_MAX, 2 ** (len(self.deaths) - 1) - 1) if len(self.deaths) > 1 else 0
        self.restart_at = now + wait
        if not self.stopping:
            self._replace()

    def _replace(self) -> None:
        """Start workers until ``defaults.workers`` serve (those draining do not count)."""
        assert self.config is not None
        if time.monotonic() < self.restart_at:
            return
        serving = {w.slot for w in self.workers if w.state in ("starting", "ready")}
        for slot in range(self.config.defaults.workers):
            if slot not in serving:
                self._start_worker(slot)

    def _home(self, site: str) -> Worker | None:
        """The serving worker whose slot is the site's home (a stable hash of its name), so a
        site's collections go to one worker, and keep going to it after restarts."""
        assert self.config is not None
        digest = hashlib.blake2b(site.encode(), digest_size=4).digest()
        slot = int.from_bytes(digest) % self.config.defaults.workers
        for worker in self.workers:
            if worker.slot == slot and worker.state in ("starting", "ready"):
                return worker
        return None

    def _reap(self, worker: Worker, wait: float) -> int | None:
        """Forget a worker; wait for its exit up to ``wait`` seconds, then kill it."""
        if worker in self.workers:
            self.workers.remove(worker)
        for site in [s for s, w in self.site_owner.items() if w is worker]:
            del self.site_owner[site]
            assert self.queue is not None
            self.queue.release(site)
        with contextlib.suppress(OSError):
            worker.sock.close()
        try:
            return worker.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.pid, signal.SIGKILL)
            return worker.process.wait()

    def _watch(self, now: float) -> None:
        """Replace workers that are stuck, drained or missing."""
        for worker in list(self.workers):
            stuck = [r for r in worker.running.values() if now - r.began > r.limit + STUCK_GRACE]
            if stuck and worker.state != "stopping":
                self._kill_stuck(worker, stuck)
            elif worker.state == "draining" and (
                not worker.running or now - worker.drain_since > DRAIN_LIMIT
            ):
                worker.state = "stopping"
                worker.send({"op": "stop"})
        self._replace()

    def _kill_stuck(self, worker: Worker, stuck: list[Running]) -> None:
        for running in stuck:
            error = (
                f"stopped after {human(running.limit)}: run_limit exceeded; its worker did "
                "not end it and was restarted"
            )
            self.inbox.abandon_runs(running.source_id, worker.pid, error, running.launched)
            log.error(
                "%s: %s",
                running.source_id,
                error,
                extra=_event("failed", running.source_id, error=error),
            )
            del worker.running[running.source_id]
            self._release(worker, running)
            self.failures[running.source_id] = self.failures.get(running.source_id, 0) + 1
            self._plan_next(running.source_id, running, status="failed")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)  # its socket closes: _ended does the rest

    def _check_memory(self) -> None:
        assert self.config is not None
        ceiling = self.config.defaults.worker_memory
        for worker in list(self.workers):
            worker.rss = _resident(worker.pid) or worker.rss
            if worker.state == "ready" and worker.rss > ceiling:
                self._drain(
                    worker,
                    f"{_megabytes(worker.rss)} resident, above worker_memory "
                    f"({_megabytes(ceiling)})",
                )

    def _drain(self, worker: Worker, why: str) -> None:
        """Replace a worker between collections: no new ones for it, a fresh one beside it."""
        worker.state = "draining"
        worker.drain_since = time.monotonic()
        assert self.queue is not None
        for site, owner in self.site_owner.items():
            if owner is worker:
                self.queue.hold(site)  # its sources wait for it: one worker per site
        log.info(
            "worker %d (pid %d) is replaced: %s",
            worker.number,
            worker.pid,
            why,
            extra=_event("worker recycled", pid=worker.pid, rss=worker.rss),
        )
        self._replace()

    # -- collections -------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Start every collection that is due and may start, on the worker of its site."""
        assert self.queue is not None and self.config is not None
        if not any(w.state == "ready" for w in self.workers):
            return
        for source_id, due in self.queue.take(time.time()):
            try:
                source = self.config.source(source_id)
            except KeyError:
                self.queue.finished(source_id)
                continue
            site = source.site()
            worker = self.site_owner.get(site) or self._home(site)
            if worker is None or worker.state != "ready":  # its worker is starting: wait
                self.queue.finished(source_id)
                self.queue.put(source_id, due, site, self.config.collections_at_once(source))
                self.queue.hold(site)
                self.waiting_sites.add(site)
                continue
            plan = self.plans.get(source_id) or Plan(_at(due), _at(due))
            limit = (source.run_limit or self.config.defaults.run_limit).total_seconds()
            now = datetime.now(UTC)
            worker.running[source_id] = Running(source_id, site, plan, now, time.monotonic(), limit)
            self.site_owner[site] = worker
            worker.send({"op": "collect", "source": source_id})
            log.debug(
                "%s: started on worker %d, %s late",
                source_id,
                worker.number,
                human(max(0.0, time.time() - due)),
                extra=_event("started", source_id, late=round(time.time() - due, 3)),
            )

    def _finished(self, worker: Worker, source_id: str, record: dict[str, Any]) -> None:
        running = worker.running.pop(source_id, None)
        if running is None:
            return
        self._release(worker, running)
        status = record.get("status") or "failed"
        if status == "ok":
            self.failures[source_id] = 0
            self.gone[source_id] = False
        elif status == "failed":
            self.failures[source_id] = self.failures.get(source_id, 0) + 1
            self.gone[source_id] = bool(record.get("gone"))
        self._log_run(source_id, record, running)
        self._plan_next(source_id, running, status=status)

    def _skipped(self, worker: Worker, source_id: str, holder: str) -> None:
        running = worker.running.pop(source_id, None)
        if running is None:
            return
        self._release(worker, running)
        log.info(
            "%s: skipped: being collected by pid %s",
            source_id,
            holder,
            extra=_event("skipped", source_id, holder=holder),
        )
        self._plan_next(source_id, running, status="skipped")

    def _release(self, worker: Worker, running: Running) -> None:
        assert self.queue is not None
        self.queue.finished(running.source_id)
        if self.site_owner.get(running.site) is worker and not any(
            r.site == running.site for r in worker.running.values()
        ):
            del self.site_owner[running.site]
            self.queue.release(running.site)

    def _plan_next(self, source_id: str, running: Running, *, status: str) -> None:
        """Put a source back in the queue at its next due time (unless it left the config)."""
        assert self.queue is not None and self.config is not None
        if source_id not in self.fingerprints:
            return
        source = self.config.source(source_id)
        plan = next_due(
            source,
            self.config.defaults,
            started=running.launched,
            failures=self.failures.get(source_id, 0),
            gone=self.gone.get(source_id, False) and status == "failed",
            now=datetime.now(UTC),
            rng=self.rng,
        )
        self._enqueue(source, plan)

    def _enqueue(self, source: SourceConfig, plan: Plan) -> None:
        assert self.queue is not None and self.config is not None
        self.plans[source.id] = plan
        self.queue.put(
            source.id, plan.at.timestamp(), source.site(), self.config.collections_at_once(source)
        )

    def _close_dead_run(self, source_id: str) -> None:
        """Close the 'running' run of a dead worker, under the source's lock."""
        try:
            with source_locks(self.db) as locks:
                if not locks.take([source_id]):
                    self.inbox.close_interrupted_runs([source_id])
        except Exception as exc:
            log.error("%s: could not close its run: %s", source_id, exc)

    def _log_run(self, source_id: str, run: dict[str, Any], running: Running) -> None:
        status = run["status"]
        stored = run.get("stored") or {}
        counts = {k: stored.get(k) or 0 for k in ("new", "updated", "unchanged")}
        counts["invalid"] = run.get("invalid") or 0
        warnings = run.get("warnings") or []
        duration = run.get("duration")
        late = (running.launched - running.plan.at).total_seconds()
        fields = _event(
            "collected" if status == "ok" else status,
            source_id,
            status=status,
            launched=running.launched.isoformat(timespec="milliseconds"),
            late=round(max(0.0, late), 3),
            **counts,
            duration=round(duration, 3) if duration is not None else None,
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
        quiet = status == "ok" or (status == "interrupted" and self.stopping)
        log.log(logging.INFO if quiet else logging.WARNING, text, extra=fields)
        for warning in warnings:
            log.warning(
                "%s: warning: %s",
                source_id,
                warning,
                extra=_event("warning", source_id, error=warning),
            )

    def _log_backlog(self, now: float) -> None:
        """Say how late the queue is: at once when it falls behind, then once a minute."""
        assert self.queue is not None
        count, oldest = self.queue.late(time.time(), self.grace)
        if count and (self.late_logged is None or now - self.late_logged >= BACKLOG_EVERY):
            self.late_logged = now
            log.warning(
                backlog_line(count, oldest),
                extra=_event("backlog", late=count, oldest=round(oldest, 1)),
            )
        elif not count and self.late_logged is not None:
            self.late_logged = None
            log.info("no collection is late any more", extra=_event("backlog", late=0))

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
        forced = self.hangup
        self.hangup = False
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
        if self.loading:
            self.stamp = None  # one reading at a time: look again once this one is done
            return
        self.loading = True
        threading.Thread(target=self._load, args=(data,), name="glas-reload", daemon=True).start()

    def _load(self, data: bytes) -> None:
        """A thread: read the changed file (seconds for thousands of sources) while the
        daemon goes on dispatching; the outcome comes back through the event queue."""
        try:
            outcome: Config | ConfigError | Exception = load_config(self.path)
        except Exception as exc:  # ConfigError, or the file cannot be read
            outcome = exc
        self.events.put((None, {"ev": "loaded", "outcome": outcome, "data": data}))

    def _loaded(self, message: dict[str, Any]) -> None:
        self.loading = False
        outcome, data = message["outcome"], message["data"]
        if isinstance(outcome, ConfigError):
            self.digest = hashlib.sha256(data).hexdigest()  # reported once, not every poll
            for line in outcome.messages:
                log.error(line, extra=_event("config invalid", error=line))
            log.error(
                "%s: invalid (%d problem%s); keeping the sources already scheduled",
                self.path,
                len(outcome.messages),
                "" if len(outcome.messages) == 1 else "s",
                extra=_event("config invalid", problems=len(outcome.messages)),
            )
            return
        if isinstance(outcome, Exception):
            error = f"{type(outcome).__name__}: {outcome}"
            log.error(
                "%s: could not reload: %s",
                self.path,
                error,
                extra=_event("config invalid", error=error),
            )
            return
        try:
            changed = self.path.read_bytes() != data
        except OSError:
            changed = True
        if changed:
            self.stamp = None  # changed while being read: look again at the next poll
            return
        self._adopt(outcome, data)

    def _adopt(self, config: Config, data: bytes) -> None:
        """Make ``config`` the one workers read and schedule its sources."""
        assert self.queue is not None
        part = self.snapshot.with_name("sources.yaml.part")
        part.write_bytes(data)
        part.replace(self.snapshot)
        self.digest = hashlib.sha256(data).hexdigest()
        first = self.config is None
        old = self.fingerprints
        shared = _shared_fingerprint(config)
        new = {s.id: s.model_dump_json() for s in config.enabled}
        added = [i for i in new if i not in old]
        removed = [i for i in old if i not in new]
        changed = [i for i in new if i in old and old[i] != new[i]]
        self.config, self.fingerprints = config, new
        now = datetime.now(UTC)
        rows = self._health_rows(added + changed) if added or changed else {}
        spread = len(added) > config.defaults.parallel
        for source_id in removed:
            self.queue.remove(source_id)
            self.plans.pop(source_id, None)
        for source_id in added + changed:
            source = config.source(source_id)
            row = rows.get(source_id)
            self.failures[source_id] = int(row.get("consecutive_failures") or 0) if row else 0
            self.gone[source_id] = health.is_gone(row)
            self.grace[source_id] = late_after(source, config.defaults, now)
            self.intervals[source_id] = health.interval(
                source, config.defaults, now
            ).total_seconds()
            if any(source_id in w.running for w in self.workers):
                continue  # planned again when it ends, with the new settings
            self._enqueue(
                source,
                first_due(source, config.defaults, row, now, spread=spread, rng=self.rng),
            )
        if first:
            self.shared = shared
            return
        if shared != self.shared:
            self.shared = shared
            for worker in list(self.workers):
                if worker.state in ("starting", "ready"):
                    self._drain(worker, "defaults or sites changed")
        else:
            for worker in self.workers:
                if worker.state in ("starting", "ready", "draining"):
                    worker.send({"op": "config"})
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

    def _health_rows(self, only: list[str]) -> dict[str, dict[str, Any]]:
        rows = self.inbox.source_health(datetime.now(UTC), source_ids=only)
        return {r["source_id"]: r for r in rows}


def _shared_fingerprint(config: Config) -> str:
    """What a worker's harvester is built from, besides the sources (a change restarts it)."""
    parts = [config.defaults.model_dump_json()]
    parts += [f"{host}={site.model_dump_json()}" for host, site in sorted(config.sites.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
