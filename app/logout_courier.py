"""Each server process's logout courier: a daemon thread that delivers the Back-Channel Logout tokens owed to
the sites (:meth:`app.services.backchannel_logout.BackchannelLogouts.deliver_due`).

A background worker (``app/process_worker.py``), as the audit sealer is: started at the process's first
request, never in a CLI command, and a failed round is logged and never ends the thread. It looks every
``MOCERT_BACKCHANNEL_LOGOUT_INTERVAL`` seconds (0: no courier) — what is due again after a failed post, or
what a process that died left — and at once when a commit of this process queued a token
(:func:`_wake_after_commit`): the logout reaches the site within a moment of the revocation's commit, and
never before it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from .process_worker import ProcessWorker
from .services.backchannel_logout import BATCH, QUEUED


class Courier(ProcessWorker):
    """The courier thread of ``app`` in this process."""

    name = "logout-courier"
    failed = "delivering back-channel logouts failed (the next round tries again)"

    def round(self) -> None:
        from .wiring import parts

        while sum(parts().backchannel_logouts.deliver_due().values()) == BATCH:
            pass  # a full batch: more may be due


def init_app(app: Flask) -> None:
    """A courier for ``app`` when ``BACKCHANNEL_LOGOUT_INTERVAL`` is above 0, started by the first request."""
    Courier.init_app(app, interval=app.config["BACKCHANNEL_LOGOUT_INTERVAL"], key="logout_courier")


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(QUEUED, None) and has_app_context():
        courier = current_app.extensions.get("logout_courier")
        if courier is not None:
            courier.wake()


@event.listens_for(Session, "after_rollback")
def _nothing_queued(session: Session, *args: Any) -> None:
    session.info.pop(QUEUED, None)
