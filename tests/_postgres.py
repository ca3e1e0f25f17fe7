"""A throw-away PostgreSQL cluster for tests: Debian's server binaries, started as ``postgres``.

``initdb`` and ``pg_ctl`` run as the ``postgres`` user (``runuser -u postgres --`` when the
tests run as root, directly when they already run as that user), with ``fsync`` off and a
Unix socket in a private folder (no TCP port), and everything is removed afterwards.
``scripts/ensure-postgres`` installs the packages when missing. :func:`start_cluster` says
*why* it cannot start (no binaries, no ``postgres`` user, not root...) so the tests that need
it skip with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


class ClusterUnavailable(RuntimeError):
    """The cluster cannot start here; the message is the skip reason."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        on_path = shutil.which("initdb")
        if on_path is None:
            raise ClusterUnavailable(
                "PostgreSQL server binaries (initdb) are not installed; run scripts/ensure-postgres"
            )
        return Path(on_path).resolve().parent
    return Path(found[-1]).parent


def _as_postgres() -> list[str]:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterUnavailable(
            "there is no 'postgres' user; run scripts/ensure-postgres (Debian's package adds it)"
        ) from None
    if os.geteuid() == pwd.getpwnam("postgres").pw_uid:
        return []
    if os.geteuid() != 0:
        raise ClusterUnavailable(
            "starting a PostgreSQL cluster needs root (to run as 'postgres' with runuser) or the postgres user"
        )
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ClusterUnavailable("runuser is missing; cannot start PostgreSQL as the 'postgres' user")
    return [runuser, "-u", "postgres", "--"]


class Cluster:
    """A running cluster; :meth:`new_database` gives each test its own database."""

    def __init__(self, *, fsync: bool = False) -> None:
        bin_dir = _bin_dir()
        prefix = _as_postgres()
        self.root = Path(tempfile.mkdtemp(prefix="nbp-pg-"))
        pg = pwd.getpwnam("postgres")
        os.chmod(self.root, 0o700)
        os.chown(self.root, pg.pw_uid, pg.pw_gid)
        self.data = self.root / "data"
        self.socket_dir = self.root
        self._prefix, self._bin = prefix, bin_dir
        durability = "-c fsync=on -c synchronous_commit=on" if fsync else "-F -c full_page_writes=off"
        options = f"{durability} -k {self.root} -c listen_addresses='' -c max_connections=100"
        try:
            self._run(
                ["initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"], "initdb"
            )
            self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                "pg_ctl start",
            )
        except BaseException:
            self.stop()  # a half-started cluster is stopped and its folder removed
            raise
        self.url = self.url_for("postgres")

    def _run(self, args: list[str], what: str) -> None:
        cmd = [*self._prefix, str(self._bin / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise ClusterUnavailable(f"{what} failed: {(done.stderr or done.stdout).strip()[-400:]} {log[-400:]}")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url_for(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"], "pg_ctl stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(*, fsync: bool = False) -> Cluster:
    """Start a cluster (``fsync=True``: durable commits, for benchmarks) or raise
    :class:`ClusterUnavailable` with the reason."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ClusterUnavailable("psycopg is not installed (pip install 'psycopg[binary]')") from None
    return Cluster(fsync=fsync)


def cluster_or_reason() -> Iterator[Cluster | str]:
    """Yield a cluster (stopped and removed afterwards) or the reason it could not start."""
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        yield str(exc)
        return
    try:
        yield cluster
    finally:
        cluster.stop()
