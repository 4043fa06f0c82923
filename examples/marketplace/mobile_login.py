"""Logging in with 行動自然人憑證 (the mobile citizen certificate) through MoCert's API for agencies.

The person types their national ID; the marketplace asks MoCert for a ticket (shown as a QR code for the
phone to scan) or a push to their phones, with a random six-digit hint that the page and the phone both
show, so the person can tell this request from any other. Nothing is sent for an ID that is not one (its
check digit is checked here), and starting is limited per visitor address and, for a push, per national ID
(:data:`VISITOR_LIMIT`, :data:`PUSH_LIMIT`). The login then waits in the store while the
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

from twfido import ticket as sp_ticket

from .store import MobileLogin, Store
from .twfido_client import (
    POLL_INTERVAL_SECONDS, TIME_LIMIT_SECONDS, Approval, Refused, Request, Revoked, TwFidoClient, Unavailable,
    Untrusted,
)

log = logging.getLogger(__name__)

# A national ID: a region letter, 1/2 for citizens or 8/9 for residents, eight digits, the last a check digit.
# Checked here in full, so that a mistyped or invented ID never reaches MoCert: MoCert limits the refused calls
# of each address, and every login here is asked from the marketplace's one address.
NATIONAL_ID = re.compile(r"[A-Z][1289][0-9]{8}")
# The region letter's number (I, O, W, X, Y, Z are out of sequence); its two digits and the nine others are
# weighted thus, and the sum of a valid ID is a multiple of 10.
LETTER_VALUES = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36)))
WEIGHTS = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1)
HINT_DIGITS = 6
# How often a login may be started, as (attempts, seconds). Each start makes MoCert work and may reach a
# person's phones, so: per visitor address, and, for a push, per national ID, whoever asks. A push goes to
# the phones of whatever ID is typed: without a limit anyone could prompt someone's phones again and again
# until one prompt is approved by mistake (approval fatigue). A limited push leaves the QR code.
VISITOR_LIMIT = (5, 60)
PUSH_LIMIT = (3, 600)
# A login is forgotten when its ticket has surely expired: MoCert answers SPTKT_OVD by then.
KEPT_SECONDS = TIME_LIMIT_SECONDS + 60


class InvalidNationalId(ValueError):
    """Not a national ID: its shape or its check digit is wrong (nothing was sent to MoCert)."""


class TooManyLogins(Exception):
    """A limit was reached (nothing was sent to MoCert): ``which`` is ``visitor`` (this address started
    too many logins) or ``push`` (too many pushes to this national ID)."""

    def __init__(self, which: str) -> None:
        super().__init__(which)
        self.which = which


@dataclass(frozen=True)
class Outcome:
    """A poll's answer: ``pending``; ``logged_in`` with the approval; ``refused`` with MoCert's code (or
    ``SPTKT_OVD`` when the login outlived its ticket); ``revoked`` (approved on a phone whose certificate is
    revoked or on hold); ``failed`` (an answer not believed); ``ended`` (no such login: it ended already, or
    never began in this session)."""

    status: str
    code: str | None = None
    login: MobileLogin | None = None
    approval: Approval | None = None


def normalize(national_id: object) -> str:
    """The ID as MoCert hashes it (trimmed, upper case); raises :class:`InvalidNationalId`."""
    value = national_id.strip().upper() if isinstance(national_id, str) else ""
    if not NATIONAL_ID.fullmatch(value):
        raise InvalidNationalId(value)
    digits = [*divmod(LETTER_VALUES[value[0]], 10), *map(int, value[1:])]
    if sum(weight * digit for weight, digit in zip(WEIGHTS, digits, strict=True)) % 10:
        raise InvalidNationalId(value)
    return value


def masked(national_id: str) -> str:
    """A12****789: enough for the person to recognise their ID on the page."""
    return f"{national_id[:3]}****{national_id[-3:]}"


def start(client: TwFidoClient, store: Store, national_id: str, *, push: bool, visitor: str) -> MobileLogin:
    """Ask MoCert for the request and keep the login; ``visitor`` is the address asking. Raises
    :class:`InvalidNationalId`, :class:`TooManyLogins`, or the client's :class:`Refused` (IDNUM_USERPROF_NF...),
    :class:`Unavailable`, :class:`Untrusted`."""
    national_id = normalize(national_id)
    limits = [(f"visitor:{visitor}", *VISITOR_LIMIT)]
    if push:
        limits.append((f"push:{sp_ticket.hashed_id_num(national_id)}", *PUSH_LIMIT))
    full = store.count_attempt(limits, now=time.time())
    if full is not None:
        raise TooManyLogins(full.partition(":")[0])
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
    except Unavailable as exc:
        # MoCert, or the certificate's status, away for a moment: the page asks again (MoCert answers the
        # result again until the request expires); the ticket's limit still holds.
        log.warning("mobile login %s: %s", login.transaction_id, exc)
        return Outcome("pending", login=login)
    except Refused as refusal:
        store.end_mobile_login(login_id)
        return Outcome("refused", refusal.code, login)
    except Revoked as exc:
        log.warning("mobile login %s: %s", login.transaction_id, exc)
        store.end_mobile_login(login_id)
        return Outcome("revoked", login=login)
    except Untrusted as exc:
        log.warning("mobile login %s: answer not believed: %s", login.transaction_id, exc)
        store.end_mobile_login(login_id)
        return Outcome("failed", login=login)
    if approval is None:
        return Outcome("pending", login=login)
    if not store.end_mobile_login(login_id):  # another poll of this login took it first
        return Outcome("ended")
    return Outcome("logged_in", login=login, approval=approval)
