"""A server process's background worker: a daemon thread that runs one round of some job every ``interval``
seconds, and at once when woken. The audit sealer (``app/audit_sealer.py``) and the back-channel logout
courier (``app/logout_courier.py``) are two of them.

Started at the process's first request, not when the app is made: gunicorn may make the app in its master
and fork the workers, and a thread does not survive a fork, so each worker starts its own (the process id
tells); ``flask run``'s reloader parent never serves a request and runs none, nor does a CLI command.

A failed round is logged and never ends the thread: the next round, after a wait that doubles with each
failure in a row (up to :data:`LONGEST_WAIT`), tries again.
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask

from .extensions import db

LONGEST_WAIT = 60.0  # seconds between two rounds after failures in a row


class ProcessWorker:
    """One job's thread in this process. A subclass names it (``name``), says what a failure was
    (``failed``), and does one round in :meth:`round`, in an app context whose session is removed after."""

    name = "worker"
    failed = "a round failed (the next one tries again)"

    def __init__(self, app: Flask, *, interval: float) -> None:
        self.app, self.interval = app, interval
        self.log = logging.getLogger(type(self).__module__)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wakeup = threading.Event()

    def round(self) -> None:
        raise NotImplementedError

    def ensure_running(self) -> None:
        """Start the thread unless this process has one (cheap: called before every request)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stopping,), name=self.name, daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def wake(self) -> None:
        """Run a round now, not at the end of the wait."""
        self.ensure_running()
        self._wakeup.set()

    def stop(self, timeout: float = 5) -> None:
        """End the thread after its round (tests; a server's ends with its process)."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pid = None

    def run_once(self) -> bool:
        """One round; whether it went through (a failure is logged, not raised)."""
        try:
            with self.app.app_context():
                try:
                    self.round()
                finally:
                    db.session.remove()
        except Exception:
            self.log.exception(self.failed)
            return False
        return True

    def _run(self, stopping: threading.Event) -> None:
        failures = 0
        while not stopping.is_set():
            self._wakeup.wait(min(self.interval * 2**failures, max(self.interval, LONGEST_WAIT)))
            self._wakeup.clear()
            if stopping.is_set():
                return
            failures = 0 if self.run_once() else min(failures + 1, 30)

    @classmethod
    def init_app(cls, app: Flask, *, interval: float, key: str) -> None:
        """One for ``app`` in ``app.extensions[key]`` when ``interval`` is above 0 (0: none), started by the
        process's first request."""
        if interval <= 0:
            return
        worker = cls(app, interval=interval)
        app.extensions[key] = worker
        app.before_request(worker.ensure_running)
