"""SQLite set up for a server of several processes and threads on one file (gunicorn 2 × 8, say).

Every connection the pool opens gets:

- ``journal_mode=WAL`` (kept in the file; set by the first connection that finds another mode). In SQLite's
  default rollback journal a commit waits until nobody reads, and under 16 threads that read and write,
  writers waited past their timeout: "database is locked", a 503. With the write-ahead log readers never
  wait for the writer, nor the writer for readers; writers still take turns.
- ``busy_timeout`` (``MOCERT_SQLITE_BUSY_TIMEOUT`` seconds): how long a writer waits for its turn before giving
  up with "database is locked" (a 503).
- ``synchronous=FULL``: a commit is on disk when it returns. WAL would allow NORMAL (the log synced only at
  checkpoints: a power loss can undo the last commits, never corrupt the file), but a lost commit here is
  a revocation an administrator was told is done, a mobile certificate serial a phone already holds (and
  that would be issued again), or an audit hash a verifier kept as an anchor. FULL costs one fsync per commit.
- ``foreign_keys=ON``: SQLite checks references only when asked to, PostgreSQL always; the same rules on both.

Transactions. pysqlite's own BEGIN is switched off (``isolation_level = None``, as in SQLAlchemy's recipe,
"Enabling Non-Legacy SQLite Transactional Modes") and this module emits it: ``BEGIN IMMEDIATE`` before the
first statement of a transaction that is not a read (an INSERT, UPDATE or DELETE, DDL, a SAVEPOINT, or a
SELECT … FOR UPDATE). The reads before it run outside, each seeing the newest commit, as under
PostgreSQL's READ COMMITTED. Not a BEGIN when SQLAlchemy begins, as the recipe has it, because:

- a deferred ``BEGIN`` fixes the transaction's snapshot at its first read; nearly every request reads (its
  session) before it writes, and a transaction that read and then writes after another writer committed is
  refused at once (SQLITE_BUSY_SNAPSHOT): no busy timeout helps a snapshot that is already out of date.
- ``BEGIN IMMEDIATE`` for every transaction would make every request, every GET and poll, hold the one write
  lock from its first query to its end, waits on an OCSP responder, the identity check or SMTP included,
  and the audit CSV export for as long as it streams.

Taken at the first write, the lock is held from there to the commit or rollback, and the transaction
starts on the newest commit, which is what the code relies on: a claim (app/services/tickets.py) is one
conditional UPDATE, so two claims are two turns at the lock; and ``SELECT … FOR UPDATE``, which SQLite does
not have, takes the lock as well, so guesses at a person's national ID wait for each other here as on
PostgreSQL (app/oidc/national_id.py), and the audit sealer's hold on the chain's head keeps a second sealer
out until the first one's links are committed (app/audit_chain.py; recording an audit event is a plain
INSERT, one more write of the transaction that already holds the lock). A migration's
DDL is a transaction too (pysqlite committed DDL statement by statement).

Waiting for the turn. SQLite's busy handler retries ever more rarely (after a third of a second, every
100 ms), so under a steady stream of writers the one that has waited longest is the least likely to get in:
with 2 workers × 8 threads and 16 clients logging in, writers waited up to 3.8 s for transactions that hold
the lock for milliseconds. ``BEGIN IMMEDIATE`` is therefore tried every :data:`RETRY_EVERY` until the busy
timeout, which gives every waiter the same chance at each turn: under the same load, with twice the logins
getting through, the longest wait was 0.7 s.

AUTOCOMMIT is not used on SQLite here: the pool would hand the BEGIN back to pysqlite when it resets such
a connection.
"""

from __future__ import annotations

import functools
import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine

# Statements that neither write nor lock; anything else begins a write transaction (a WITH … SELECT too: a
# needless turn at the lock, never a missing one).
READS = ("SELECT", "PRAGMA", "EXPLAIN")
RETRY_EVERY = 0.002  # seconds between two tries at the write lock


def configure(engine: Engine, *, busy_timeout: float) -> None:
    """Set up ``engine``'s connections and transactions as above; other databases are left alone.

    Call before the engine opens its first connection (the pool runs the set-up on each new one).
    """
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", functools.partial(_set_up, busy_timeout=busy_timeout))
    # Dialect events, not before_cursor_execute: what is raised in them is wrapped as SQLAlchemy's own
    # OperationalError, which the app answers with a 503.
    def before_execute(cursor, statement, *parameters_and_context) -> None:
        _begin_before_first_write(cursor, statement, parameters_and_context[-1], busy_timeout=busy_timeout)

    for execute in ("do_execute", "do_executemany", "do_execute_no_params"):
        event.listen(engine, execute, before_execute)


def _set_up(dbapi_connection: sqlite3.Connection, connection_record, *, busy_timeout: float) -> None:
    dbapi_connection.isolation_level = None  # no BEGIN of pysqlite's: _begin_before_first_write emits them
    _pragma(dbapi_connection, f"busy_timeout = {_milliseconds(busy_timeout)}")  # first: switching to WAL waits
    if _pragma(dbapi_connection, "journal_mode") != "wal":
        _pragma(dbapi_connection, "journal_mode = WAL")  # answers "memory" for a database in memory: left so
    _pragma(dbapi_connection, "synchronous = FULL")
    _pragma(dbapi_connection, "foreign_keys = ON")


def _begin_before_first_write(cursor, statement: str, context, *, busy_timeout: float) -> None:
    """Emit BEGIN IMMEDIATE before ``statement`` if it is the first write of its transaction; returns None,
    so that SQLAlchemy goes on to execute the statement itself."""
    connection = cursor.connection
    if connection.in_transaction:
        return
    if statement.lstrip().split(None, 1)[0].upper() in READS and not _locks_rows(context):
        return
    deadline = time.monotonic() + busy_timeout
    _pragma(connection, "busy_timeout = 0")  # no waiting inside SQLite: the loop below waits
    try:
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # SQLITE_BUSY_SNAPSHOT too
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(RETRY_EVERY)
    finally:
        _pragma(connection, f"busy_timeout = {_milliseconds(busy_timeout)}")


def _locks_rows(context) -> bool:
    """A SELECT … FOR UPDATE: SQLite's compiler drops the clause, the compiled statement still has it."""
    statement = getattr(getattr(context, "compiled", None), "statement", None)
    return getattr(statement, "_for_update_arg", None) is not None


def _pragma(connection: sqlite3.Connection, pragma: str):
    cursor = connection.execute(f"PRAGMA {pragma}")
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()  # an unfinished statement would hold its read snapshot open
    return row[0] if row else None


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)
