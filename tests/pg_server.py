"""A real, throwaway PostgreSQL server for tests: initdb + pg_ctl in a temporary directory.

The server listens on a free loopback port with ``trust`` authentication and is removed when
stopped. initdb refuses to run as root (CI runs as root), so as root the server runs as the
unprivileged ``nobody`` user (through ``setpriv``); otherwise as the current user.

    with PgServer() as pg:
        psycopg.connect(pg.url)
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

UNPRIVILEGED = "nobody"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (`make test` installs them)."""


def find_binary(name: str) -> str:
    """``initdb``/``pg_ctl``: on PATH, else in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise PgUnavailable(
        f"PostgreSQL's {name} is not installed: run `make test` (it installs the server) or "
        "install the postgresql package"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """Start with :meth:`start` (or ``with``); ``url`` is a libpq connection URL."""

    def __init__(self) -> None:
        self.initdb = find_binary("initdb")
        self.pg_ctl = find_binary("pg_ctl")
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="glas-pg-"))
        self.data = self.root / "data"
        self.user = "glas"
        self._as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(UNPRIVILEGED)
            self._as = [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--clear-groups",
            ]
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chmod(self.root, 0o700)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, env=env, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")

    def start(self) -> PgServer:
        self._run(
            self.initdb, "-D", str(self.data), "-U", self.user, "-A", "trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        self._run(
            self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError):
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
