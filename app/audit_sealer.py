"""Each server process's audit sealer: a daemon thread that seals the queued audit events into the hash chain
every ``MOCERT_AUDIT_SEAL_INTERVAL`` seconds (:func:`app.audit_chain.seal`; 0 runs none).

Started at the process's first request, not when the app is made: gunicorn may make the app in its master
and fork the workers, and a thread does not survive a fork, so each worker starts its own (the process id
tells); ``flask run``'s reloader parent never serves a request and runs none. A CLI command runs none: the
events it records wait for a server's sealer, or for ``flask audit seal``. Sealers of several processes take
turns at the chain's head (one seals, the others find it taken and skip the round).

A failed round is logged and never ends the thread: its batch was rolled back whole, and the next round,
after a wait that doubles with each failure in a row (up to :data:`LONGEST_WAIT`), tries again.
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask

from . import audit_chain
from .extensions import db

log = logging.getLogger(__name__)
LONGEST_WAIT = 60.0  # seconds between two rounds after failures in a row


class Sealer:
    """The sealer thread of ``app`` in this process."""

    def __init__(self, app: Flask, *, interval: float) -> None:
        self.app, self.interval = app, interval
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def ensure_running(self) -> None:
        """Start the thread unless this process has one (cheap: called before every request)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stopping,), name="audit-sealer",
                                            daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def stop(self, timeout: float = 5) -> None:
        """End the thread after its round (tests; a server's ends with its process)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def seal_once(self) -> bool:
        """One round; whether it went through (a failure is logged, not raised)."""
        try:
            with self.app.app_context():
                try:
                    audit_chain.seal(db.session)
                finally:
                    db.session.remove()
        except Exception:
            log.exception("sealing the audit trail failed (rolled back; the next round tries again)")
            return False
        return True

    def _run(self, stopping: threading.Event) -> None:
        failures = 0
        while not stopping.wait(min(self.interval * 2**failures, max(self.interval, LONGEST_WAIT))):
            failures = 0 if self.seal_once() else min(failures + 1, 30)


def init_app(app: Flask) -> None:
    """A sealer for ``app`` when ``AUDIT_SEAL_INTERVAL`` is above 0, started by the first request."""
    interval = app.config["AUDIT_SEAL_INTERVAL"]
    if interval <= 0:
        return
    sealer = Sealer(app, interval=interval)
    app.extensions["audit_sealer"] = sealer
    app.before_request(sealer.ensure_running)
