"""The inbox logic shared by the SQL backends, one mixin per concern.

:mod:`storage.core` (dialect hooks, schema, transactions, ``seq``), :mod:`storage.posts`
(the batch upsert), :mod:`storage.cases` (cases and their summaries), :mod:`storage.answers`
(official answers), :mod:`storage.alerts` (surge alerts and their webhook outbox),
:mod:`storage.state` (sources, runs, health), :mod:`storage.reads` (export, statistics) and
:mod:`storage.report` (the figures of ``glas report``). A backend subclasses :class:`SqlInbox`
and implements the hooks of :class:`~storage.core.SqlCore`.
"""

from __future__ import annotations

from storage.alerts import AlertStore
from storage.posts import PostWrites
from storage.reads import InboxReads
from storage.report import ReportReads
from storage.state import SourceState


class SqlInbox(PostWrites, SourceState, InboxReads, ReportReads, AlertStore):
    """Every inbox operation, in the SQL SQLite and PostgreSQL both understand."""
