"""What a round measures besides its logins: the CPU the server's processes and PostgreSQL's backends
spent (from ``/proc``), the commits PostgreSQL counted, and how many backends waited on a lock."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

TICK = 1 / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the process has used, all its threads; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK  # utime, stime (fields 14 and 15 of proc(5))


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers of its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


class TreeCpu:
    """CPU of a gunicorn master and its workers over a stretch: ``start()``, then ``seconds()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        return {pid: process_cpu(pid) for pid in (self.pid, *children(self.pid))}

    def start(self) -> None:
        self._start = self._now()

    def seconds(self) -> float:
        # A worker that started meanwhile counts from zero; one that ended is lost (none should, in a round).
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._now().items())


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (nan when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


class PostgresWatch:
    """PostgreSQL's view of one database during a round, from an admin connection to another database
    (so that watching adds nothing to what it counts): ``xact_commit`` of ``pg_stat_database`` (every
    transaction that ended in a commit, a statement run outside one included: pool_pre_ping's empty query
    at each checkout is one), the CPU of the database's backends, and, sampled every ``interval`` seconds
    from ``pg_stat_activity``, how many of them wait on a lock (``wait_event_type = 'Lock'``) and how many
    are active."""

    def __init__(self, admin_url: str, database: str, interval: float = 0.1) -> None:
        import psycopg

        self.database, self.interval = database, interval
        self._connection = psycopg.connect(admin_url, autocommit=True)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[tuple[int, int]] = []
        self._commits = 0

    def close(self) -> None:
        self._connection.close()

    def _query(self, sql: str, *params):
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def commits(self) -> int:
        self._query("SELECT pg_stat_clear_snapshot()")
        return self._query("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", self.database)[0][0]

    def _backends(self) -> list[int]:
        return [pid for (pid,) in self._query(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", self.database)]

    def flush(self, timeout: float = 10) -> None:
        """End the database's client backends and wait until they are gone. A backend publishes what it
        counted when a transaction ends at most once a second, and when idle only after ten (PostgreSQL
        15's PGSTAT_IDLE_INTERVAL); at its exit, at once. The server's pool reconnects (pool_pre_ping)."""
        self._query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND backend_type = 'client backend'", self.database)
        deadline = time.monotonic() + timeout
        while self._backends() and time.monotonic() < deadline:
            time.sleep(0.05)

    def start(self) -> None:
        self.flush()  # what came before (the warm-up) is counted, and every backend starts at 0 s of CPU
        self.samples = []
        self._commits = self.commits()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="pg-activity")
        self._thread.start()

    def stop(self) -> dict:
        """The round's figures: ``commits``, ``backend_cpu`` (seconds), ``lock_waiters`` and ``active``
        (means over the samples), ``lock_waiters_max``."""
        self._stop.set()
        self._thread.join()
        cpu = sum(process_cpu(pid) for pid in self._backends())
        self.flush()
        commits = self.commits() - self._commits
        waiting = [w for w, _ in self.samples] or [0]
        return {
            "commits": commits,
            "backend_cpu": cpu,
            "lock_waiters": sum(waiting) / len(waiting),
            "lock_waiters_max": max(waiting),
            "active": sum(a for _, a in self.samples) / max(1, len(self.samples)),
        }

    def _sample(self) -> None:
        sql = ("SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE state = 'active') "
               "FROM pg_stat_activity WHERE datname = %s")
        while not self._stop.wait(self.interval):
            self.samples.append(tuple(self._query(sql, self.database)[0]))
