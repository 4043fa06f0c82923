"""Logging in with 行動自然人憑證 (the mobile citizen certificate) through MoCert's API for agencies.

The person types their national ID; the marketplace asks MoCert for a ticket (shown as a QR code for the
phone to scan) or a push to their phones, with a random six-digit hint that the page and the phone both
show, so the person can tell this request from any other. The login then waits in the store while the
page polls the marketplace, which asks MoCert at most every :data:`~.twfido_client.POLL_INTERVAL_SECONDS`
whoever polls. A verified approval (:meth:`~.twfido_client.TwFidoClient.result`: checksum, signature,
challenge_input, and ``hashed_id_num`` equal to the SHA-256 of the ID typed here) ends the login once.
No HTTP here: the views (``app.py``) answer what these return.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass

from .store import MobileLogin, Store
from .twfido_client import (
    POLL_INTERVAL_SECONDS, TIME_LIMIT_SECONDS, Approval, Refused, Request, TwFidoClient, Unavailable, Untrusted,
)

log = logging.getLogger(__name__)

# A national ID's shape (a letter, 1/2 for citizens or 8/9 for residents, eight digits), checked before
# anything is sent; MoCert checks the check digit and answers PM_IDN_FT_ERR.
NATIONAL_ID = re.compile(r"[A-Z][1289][0-9]{8}")
HINT_DIGITS = 6
# A login is forgotten when its ticket has surely expired: MoCert answers SPTKT_OVD by then.
KEPT_SECONDS = TIME_LIMIT_SECONDS + 60


class InvalidNationalId(ValueError):
    """Not the shape of a national ID (nothing was sent to MoCert)."""


@dataclass(frozen=True)
class Outcome:
    """A poll's answer: ``pending``; ``logged_in`` with the approval; ``refused`` with MoCert's code (or
    ``SPTKT_OVD`` when the login outlived its ticket); ``failed`` (an answer not believed); ``ended`` (no
    such login: it ended already, or never began in this session)."""

    status: str
    code: str | None = None
    login: MobileLogin | None = None
    approval: Approval | None = None


def normalize(national_id: object) -> str:
    """The ID as MoCert hashes it (trimmed, upper case); raises :class:`InvalidNationalId`."""
    value = national_id.strip().upper() if isinstance(national_id, str) else ""
    if not NATIONAL_ID.fullmatch(value):
        raise InvalidNationalId(value)
    return value


def masked(national_id: str) -> str:
    """A12****789: enough for the person to recognise their ID on the page."""
    return f"{national_id[:3]}****{national_id[-3:]}"


def start(client: TwFidoClient, store: Store, national_id: str, *, push: bool) -> MobileLogin:
    """Ask MoCert for the request and keep the login. Raises :class:`InvalidNationalId`, or the client's
    :class:`Refused` (IDNUM_USERPROF_NF...), :class:`Unavailable`, :class:`Untrusted`."""
    national_id = normalize(national_id)
    hint = f"{secrets.randbelow(10 ** HINT_DIGITS):0{HINT_DIGITS}d}"
    request = client.push(national_id, hint=hint) if push else client.ticket(national_id, hint=hint)
    now = time.time()
    login = MobileLogin(
        id=secrets.token_urlsafe(24), transaction_id=request.transaction_id, sp_ticket=request.sp_ticket,
        op_mode=request.op_mode, hint=request.hint, hashed_id_num=request.hashed_id_num,
        national_id_masked=masked(national_id), started_at=now,
    )
    store.start_mobile_login(login, older_than=now - KEPT_SECONDS)
    return login


def poll(client: TwFidoClient, store: Store, login_id: str) -> Outcome:
    """Where the login stands; asks MoCert only when no one has for the poll interval."""
    login = store.mobile_login(login_id)
    if login is None:
        return Outcome("ended")
    now = time.time()
    if now - login.started_at > KEPT_SECONDS:
        store.end_mobile_login(login_id)
        return Outcome("refused", "SPTKT_OVD", login)
    if not store.claim_poll(login_id, now=now, interval=POLL_INTERVAL_SECONDS):
        return Outcome("pending", login=login)
    request = Request(transaction_id=login.transaction_id, sp_ticket=login.sp_ticket, op_mode=login.op_mode,
                      hint=login.hint, hashed_id_num=login.hashed_id_num)
    try:
        approval = client.result(request)
    except Unavailable as exc:  # MoCert away for a moment: the page asks again; the ticket's limit still holds
        log.warning("mobile login %s: %s", login.transaction_id, exc)
        return Outcome("pending", login=login)
    except Refused as refusal:
        store.end_mobile_login(login_id)
        return Outcome("refused", refusal.code, login)
    except Untrusted as exc:
        log.warning("mobile login %s: answer not believed: %s", login.transaction_id, exc)
        store.end_mobile_login(login_id)
        return Outcome("failed", login=login)
    if approval is None:
        return Outcome("pending", login=login)
    if not store.end_mobile_login(login_id):  # another poll of this login took it first
        return Outcome("ended")
    return Outcome("logged_in", login=login, approval=approval)
