"""The upkeep of a ``glas worker`` (:mod:`crawler.cluster`), every heartbeat, one worker
at a time for each part (an advisory lock): queue the sources that have no job, recover the
collections of dead workers, delete old finished jobs; and, in a thread of its own, deliver
the webhooks of surge alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from crawler import cluster_db
from crawler.schedule import first_due

log = logging.getLogger("glas.cluster")
PRUNE_EVERY = 600.0  # seconds between two deletions of finished jobs
KEEP_HOURS = 1  # finished jobs are kept this long (the runs table keeps the history)


class Upkeep:
    """What :class:`crawler.cluster.ClusterWorker` does besides its jobs (a mixin: it uses
    the worker's connection, engine, harvester and settings)."""

    db: str
    heartbeat: float
    stall: float
    pruned: float
    rng: Any
    control: Any  # psycopg connection (autocommit)
    app: Any  # procrastinate.App
    worker: Any  # procrastinate.worker.Worker
    harvester: Any  # crawler.harvester.Harvester
    done: threading.Event

    async def _reload(self) -> None:
        raise NotImplementedError

    async def _defer(self, source_id: str, at: datetime) -> bool:
        raise NotImplementedError

    # -- the keeper: schedule what has no job, recover what dead workers held ------------
    async def _keep(self) -> None:
        registered = False
        while True:
            try:
                if not registered and self.worker.worker_id is not None:
                    await asyncio.to_thread(
                        cluster_db.register, self.control, self.worker.worker_id, os.getpid()
                    )
                    registered = True
                await self._reload()
                await self._recover()
                await self._schedule()
            except Exception as exc:
                log.warning("cluster upkeep failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.heartbeat)

    def _deliver(self) -> None:
        """A thread: send due webhook deliveries (:func:`crawler.webhooks.keep_delivering`:
        every worker may deliver; none is sent twice)."""
        from crawler.webhooks import keep_delivering

        keep_delivering(self.db, lambda: self.harvester.config.webhooks, self.done.wait)

    async def _schedule(self) -> None:
        """Queue every enabled source without a job, at its first due time."""
        if not await asyncio.to_thread(cluster_db.try_lock, self.control, "cluster-schedule"):
            return
        try:
            have = await asyncio.to_thread(cluster_db.scheduled_sources, self.control)
            config = self.harvester.config
            missing = [s for s in config.enabled if s.id not in have]
            if not missing:
                return
            now = datetime.now(UTC)
            rows = await self.harvester.writer.call(
                self.harvester.inbox.source_health, now, 30, [s.id for s in missing]
            )
            by_id = {r["source_id"]: r for r in rows}
            spread = len(missing) > config.defaults.parallel
            queued = 0
            for source in missing:
                plan = first_due(
                    source, config.defaults, by_id.get(source.id), now, spread=spread, rng=self.rng
                )
                queued += await self._defer(source.id, plan.at)
            if queued:
                log.info("scheduled %d source%s", queued, "" if queued == 1 else "s")
        finally:
            await asyncio.to_thread(cluster_db.unlock, self.control, "cluster-schedule")

    async def _recover(self) -> None:
        """Queue again the collections of workers whose heartbeat stopped; close their runs."""
        if not await asyncio.to_thread(cluster_db.try_lock, self.control, "cluster-recover"):
            return
        try:
            manager = self.app.job_manager
            stalled = await manager.get_stalled_jobs(
                queue=cluster_db.QUEUE, seconds_since_heartbeat=self.stall
            )
            for job in stalled:
                source_id = str(job.task_kwargs.get("source_id"))
                if job.worker_id == self.worker.worker_id or source_id in self.harvester.runs:
                    continue  # this worker's own (its loop was slow): it is alive
                if not await self.harvester.writer.call(self._close_dead_run, source_id):
                    continue  # its lock is held: the worker lives (a slow heartbeat)
                with contextlib.suppress(Exception):  # another worker retried it first
                    await manager.retry_job(job)
                    log.warning("%s: its worker stopped answering: collected again", source_id)
            await manager.prune_stalled_workers(self.stall)
            if time.monotonic() - self.pruned >= PRUNE_EVERY:
                self.pruned = time.monotonic()
                await manager.delete_old_jobs(
                    KEEP_HOURS, queue=cluster_db.QUEUE, include_failed=True, include_aborted=True
                )
        finally:
            await asyncio.to_thread(cluster_db.unlock, self.control, "cluster-recover")

    def _close_dead_run(self, source_id: str) -> bool:
        """Writer thread: close the source's ``running`` run unless a live process holds it."""
        locks = self.harvester.locks
        assert locks is not None
        if locks.take([source_id]):
            return False
        try:
            self.harvester.inbox.close_interrupted_runs([source_id])
        finally:
            locks.release_one(source_id)
        return True
