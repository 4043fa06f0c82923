"""Each server process's audit sealer: a background worker (``app/process_worker.py``) that seals the queued
audit events into the hash chain every ``MOCERT_AUDIT_SEAL_INTERVAL`` seconds (:func:`app.audit_chain.seal`;
0 runs none). A CLI command runs none: the events it records wait for a server's sealer, or for ``flask audit
seal``. Sealers of several processes take turns at the chain's head (one seals, the others find it taken and
skip the round). A failed round's batch was rolled back whole; the next round tries again.
"""

from __future__ import annotations

from flask import Flask

from . import audit_chain
from .extensions import db
from .process_worker import ProcessWorker


class Sealer(ProcessWorker):
    """The sealer thread of ``app`` in this process."""

    name = "audit-sealer"
    failed = "sealing the audit trail failed (rolled back; the next round tries again)"

    def round(self) -> None:
        audit_chain.seal(db.session)



def init_app(app: Flask) -> None:
    """A sealer for ``app`` when ``AUDIT_SEAL_INTERVAL`` is above 0, started by the first request."""
    Sealer.init_app(app, interval=app.config["AUDIT_SEAL_INTERVAL"], key="audit_sealer")
