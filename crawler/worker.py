"""A daemon worker: one long-lived harvester process taking collections from the daemon.

The daemon (:mod:`crawler.daemon`) starts each worker with ``python -I`` (so nothing is
imported from the working directory) and talks to it over a socket, one JSON object a line:

- daemon → worker: ``{"op": "collect", "source": ID}``, ``{"op": "config"}`` (read the
  daemon's copy of sources.yaml again), ``{"op": "stop"}``;
- worker → daemon: ``{"ev": "ready", "pid", "rss"}``, ``{"ev": "finished", "source",
  "record": {…}, "rss"}``, ``{"ev": "skipped", "source", "holder"}``, ``{"ev":
  "configured"}``, ``{"ev": "stopped"}``.

The worker keeps its :class:`~crawler.harvester.Harvester` warm between collections and runs
as many at once as the daemon sends. SIGTERM (systemd stops the whole service at once) and a
closed socket (the daemon died) stop it like ``stop``: what is running is recorded
interrupted. SIGINT is the daemon's to handle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import sys
from dataclasses import asdict
from typing import Any

from crawler import reactor
from crawler.config import Config, ConfigError, load_config
from crawler.harvester import Harvester
from crawler.lock import source_locks
from crawler.model import SourceConfig
from storage import open_inbox
from storage.inbox import RunRecord

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; the peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def record_dict(record: RunRecord) -> dict[str, Any]:
    data = asdict(record)
    data["stored"] = asdict(record.stored)
    return data


class _Reporter:
    def __init__(self, send: Any) -> None:
        self.send = send

    def started(self, source: SourceConfig) -> None:
        pass

    def finished(self, record: RunRecord) -> None:
        pass

    def skipped(self, source_id: str, pid: str) -> None:
        self.send({"ev": "skipped", "source": source_id, "holder": pid})


class Worker:
    """Serves the daemon's requests on ``sock`` until told to stop."""

    def __init__(self, sock: socket.socket, sources: str, db: str) -> None:
        self.sock = sock
        self.sources = sources
        self.db = db
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self._out: asyncio.StreamWriter | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self._out is not None and not self._out.is_closing():
            self._out.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")

    async def serve(self) -> None:
        reader, self._out = await asyncio.open_unix_connection(sock=self.sock)
        config = load_config(self.sources)
        with open_inbox(self.db) as inbox, source_locks(self.db) as locks:
            harvester = Harvester(config, inbox, locks=locks, reporter=_Reporter(self.send))
            self.harvester = harvester
            await harvester.open()
            self.send({"ev": "ready", "pid": os.getpid(), "rss": resident_bytes()})
            reading = asyncio.ensure_future(self._read(reader))
            await self.stopping.wait()
            reading.cancel()
            await harvester.interrupt()  # every run recorded: the daemon may go
            if self.tasks:
                await asyncio.wait(self.tasks)
            self.send({"ev": "stopped"})
            await self._out.drain()
            await harvester.close()

    def terminated(self, signum: int) -> None:
        """SIGTERM (main thread): stop as if the daemon said so."""
        reactor.call_soon(self.stopping.set)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:  # the daemon is gone
                self.stopping.set()
                return
            message = json.loads(line)
            op = message.get("op")
            if op == "collect":
                task = asyncio.ensure_future(self._collect(message["source"]))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif op == "config":
                await self._reload()
            elif op == "stop":
                self.stopping.set()
                return

    async def _collect(self, source_id: str) -> None:
        try:
            source = self.harvester.config.source(source_id)
        except KeyError:
            record = RunRecord(source_id, "failed", error="not in this worker's sources.yaml")
            self.send({"ev": "finished", "source": source_id, "record": record_dict(record)})
            return
        try:
            record = await self.harvester.collect(source)
        except Exception as exc:  # the inbox failed: the daemon logs it, the worker goes on
            record = RunRecord(source_id, "failed", error=f"{type(exc).__name__}: {exc}")
        if record is None:
            return  # skipped: reported already
        self.send(
            {
                "ev": "finished",
                "source": source_id,
                "record": record_dict(record),
                "rss": resident_bytes(),
            }
        )

    async def _reload(self) -> None:
        try:
            config: Config = await asyncio.to_thread(load_config, self.sources)
        except ConfigError as exc:  # the daemon checked it: only a race could get here
            self.send({"ev": "configured", "error": exc.messages[0]})
            return
        await self.harvester.reconfigure(config)
        self.send({"ev": "configured"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glas-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--sources", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--log-json", action="store_true")
    args = parser.parse_args(argv)
    from crawler.cli import setup_logging

    setup_logging(args.verbose, args.debug, json_lines=args.log_json, daemon=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when workers stop
    sock = socket.socket(fileno=args.fd)
    worker = Worker(sock, args.sources, args.db)
    try:
        reactor.run(worker.serve, on_signal=worker.terminated, signals=(signal.SIGTERM,))
    except Exception as exc:
        if args.debug:
            raise
        print(f"glas worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
