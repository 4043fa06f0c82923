"""Each server process's logout courier: a daemon thread that delivers the Back-Channel Logout tokens owed to
the sites (:meth:`app.services.backchannel_logout.BackchannelLogouts.deliver_due`).

Made like the audit sealer (``app/audit_sealer.py``) and for the same reasons: started at the process's
first request (a thread does not survive gunicorn's fork), never in a CLI command, and a failed round is
logged and never ends the thread. It looks every ``MOCERT_BACKCHANNEL_LOGOUT_INTERVAL`` seconds (0: no
courier) — what is due again after a failed post, or what a process that died left — and at once when a
commit of this process queued a token (:func:`_wake_after_commit`): the logout reaches the site within a
moment of the revocation's commit, and never before it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db
from .services.backchannel_logout import BATCH, QUEUED

log = logging.getLogger(__name__)
LONGEST_WAIT = 60.0  # seconds between two rounds after failures in a row


class Courier:
    """The courier thread of ``app`` in this process."""

    def __init__(self, app: Flask, *, interval: float) -> None:
        self.app, self.interval = app, interval
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wakeup = threading.Event()

    def ensure_running(self) -> None:
        """Start the thread unless this process has one (cheap: called before every request)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stopping,), name="logout-courier",
                                            daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def wake(self) -> None:
        """Deliver now: a commit queued a logout token."""
        self.ensure_running()
        self._wakeup.set()

    def stop(self, timeout: float = 5) -> None:
        """End the thread after its round (tests; a server's ends with its process)."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pid = None

    def deliver_once(self) -> int | None:
        """One round; how many deliveries it finished or put off, or None when it failed (logged, not raised)."""
        from .wiring import parts

        try:
            with self.app.app_context():
                try:
                    return sum(parts().backchannel_logouts.deliver_due().values())
                finally:
                    db.session.remove()
        except Exception:
            log.exception("delivering back-channel logouts failed (the next round tries again)")
            return None

    def _run(self, stopping: threading.Event) -> None:
        failures = 0
        while not stopping.is_set():
            self._wakeup.wait(min(self.interval * 2**failures, max(self.interval, LONGEST_WAIT)))
            self._wakeup.clear()
            if stopping.is_set():
                return
            done = self.deliver_once()
            while done == BATCH:  # a full batch: more may be due
                done = self.deliver_once()
            failures = 0 if done is not None else min(failures + 1, 30)


def init_app(app: Flask) -> None:
    """A courier for ``app`` when ``BACKCHANNEL_LOGOUT_INTERVAL`` is above 0, started by the first request."""
    interval = app.config["BACKCHANNEL_LOGOUT_INTERVAL"]
    if interval <= 0:
        return
    courier = Courier(app, interval=interval)
    app.extensions["logout_courier"] = courier
    app.before_request(courier.ensure_running)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(QUEUED, None) and has_app_context():
        courier = current_app.extensions.get("logout_courier")
        if courier is not None:
            courier.wake()


@event.listens_for(Session, "after_rollback")
def _nothing_queued(session: Session, *args: Any) -> None:
    session.info.pop(QUEUED, None)
