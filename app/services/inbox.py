"""A phone's inbox (/m/inbox): the agencies' requests pushed to it, listed while the page is open.

An agency's ``requestAthOrSignPush`` (and ``doBatchSigning`` by PUSH) sends a request to the person's bound
phones, or to the one it names. Each phone finds it in its inbox. The phone is not logged in: it opens the
inbox as it logs in by QR code, with a discoverable credential over a challenge of ours (an
:class:`~app.models.InboxSession`, a single-use ticket), checked by ``Devices.verify_assertion``. Success
gives an inbox token, random and stored only as its hash, good for a few minutes (``MOCERT_INBOX_TTL``) and
never past the phone's certificate: it lists the phone's pending requests and names the phone.

The list is the hot path (each open inbox asks every few seconds): one read of the token with its phone
and person, one indexed read of the requests with their agencies, no write. A request is answered from
the inbox by its ``public_id`` through ``SpRequests`` (``inbox_options``, ``inbox_approve``,
``inbox_decline``): the same checks and the same single-use taking as an answer by ticket, with the
phone's passkey over the request's own challenge. The ticket itself is never stored, so the inbox never
hands one out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

import webauthn

from ..audit import Tags, record
from ..extensions import db
from ..models import Account, Agency, Device, InboxSession, PushSubscription, SpRequest, utcnow
from . import tickets
from .devices import Devices, RelyingParty, by_credential, ensure_usable
from .push_notices import PushNotices
from .refusals import Refusal
from .sp_requests import PUSH, SpRequests
from .tokens import digest, new_token

OPENING_TTL = timedelta(minutes=2)  # from the options to the passkey's answer
LIST_MAX = 50  # requests listed at once: more than any person has waiting


@dataclass(frozen=True)
class Opened:
    """An opened inbox: its token (shown once, to the phone that opened it), until when, and the phone."""

    token: str
    expires_at: datetime
    device: Device


class Inbox:
    """Built once (``app/wiring.py``); the views pass the phone's answers and its inbox token."""

    def __init__(
        self,
        *,
        relying_party: RelyingParty,
        devices: Devices,
        sp_requests: SpRequests,
        push_notices: PushNotices,
        ttl: timedelta,
    ) -> None:
        self.relying_party, self.devices, self.sp_requests = relying_party, devices, sp_requests
        self.push_notices, self.ttl = push_notices, ttl

    # -- opening: the passkey proves the phone ------------------------------------------------------------

    def options(self) -> dict:
        """A fresh challenge (kept server-side, answered once) and the ``opening`` token that names it."""
        challenge = secrets.token_bytes(32)
        _, token = tickets.issue(InboxSession, ttl=OPENING_TTL, challenge=challenge)
        db.session.commit()
        return {
            "opening": token,
            **webauthn.authentication_options(
                rp_id=self.relying_party.id,
                challenge=challenge,
                allow_credentials=(),  # discoverable: the phone is not logged in, its answer names the credential
                user_verification="required",
                timeout_ms=int(OPENING_TTL.total_seconds() * 1000),
            ),
        }

    def open(self, opening: object, credential: object) -> Opened:
        """The passkey's answer to :meth:`options`: the inbox token of the phone it names, or a refusal
        (audited once the opening is spent)."""
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="passkey_answer")
        inbox = tickets.by_token(InboxSession, opening)
        if inbox is None:
            raise Refusal("inbox_opening_unknown")
        if inbox.consumed_at is not None:
            raise Refusal("inbox_opening_used")
        if inbox.expires_at <= utcnow():
            raise Refusal("inbox_opening_expired")
        # Taken first, in one statement: of two answers racing for one challenge, one is checked.
        if not tickets.consume(inbox):
            raise Refusal("inbox_opening_used")
        device = by_credential(credential)
        if device is None:
            raise _failed(inbox, None, Refusal("credential_unknown"))
        try:
            self.devices.verify_assertion(device, credential, inbox.challenge)
        except Refusal as refusal:
            raise _failed(inbox, device, refusal) from None
        token, now = new_token(), utcnow()
        inbox.device_id = device.id
        inbox.access_hash = digest(token)
        inbox.completed_at = now
        # verify_assertion found the phone usable: it has a certificate, and the inbox does not outlive it.
        inbox.access_expires_at = min(now + self.ttl, device.certificate.not_after)
        record(Tags.INBOX_OPENED, account=device.account, device=device.id, inbox=inbox.public_id)
        db.session.commit()
        return Opened(token, inbox.access_expires_at, device)

    # -- what the inbox token does ------------------------------------------------------------------------

    def pending(self, token: object) -> dict:
        """The phone's pending requests, newest first: pushed to it or to all its person's phones, unanswered,
        unexpired, of an agency still enabled. No write: polled every few seconds."""
        inbox, device = self._opened(token)
        now = utcnow()
        rows = db.session.execute(
            select(SpRequest.public_id, SpRequest.op_code, SpRequest.hint, SpRequest.created_at,
                   SpRequest.expires_at, Agency.name)
            .join(Agency, SpRequest.agency_id == Agency.id)
            .where(
                SpRequest.account_id == device.account_id,
                SpRequest.op_mode == PUSH,
                SpRequest.expires_at > now,
                SpRequest.consumed_at.is_(None),
                or_(SpRequest.target_device_id.is_(None), SpRequest.target_device_id == device.id),
                Agency.disabled_at.is_(None),
            )
            .order_by(SpRequest.created_at.desc(), SpRequest.id.desc())
            .limit(LIST_MAX)
        ).all()
        return {
            "requests": [
                {"id": row.public_id, "sp_name": row.name, "op_code": row.op_code, "hint": row.hint,
                 "created_at": row.created_at.isoformat(), "expires_at": row.expires_at.isoformat()}
                for row in rows
            ],
            "expires_at": inbox.access_expires_at.isoformat(),
            "device": {"name": device.name},
        }

    def request_options(self, token: object, public_id: object) -> dict:
        """What the phone shows of one request, and the options only this phone's passkey answers."""
        _, device = self._opened(token)
        return self.sp_requests.inbox_options(device, public_id)

    def approve(self, token: object, public_id: object, credential: object) -> SpRequest:
        _, device = self._opened(token)
        return self.sp_requests.inbox_approve(device, public_id, credential)

    def decline(self, token: object, public_id: object) -> SpRequest:
        _, device = self._opened(token)
        return self.sp_requests.inbox_decline(device, public_id)

    def subscribe(self, token: object, subscription: object) -> PushSubscription:
        """Keep this phone's Web Push subscription, for notices of what is pushed to it from now on."""
        _, device = self._opened(token)
        return self.push_notices.subscribe(device, subscription)

    def _opened(self, token: object) -> tuple[InboxSession, Device]:
        """The open inbox this token is of, and its phone, still usable. Raises :class:`Refusal`."""
        if not isinstance(token, str) or len(token) not in tickets.TOKEN_LENGTHS:
            raise Refusal("inbox_unknown")
        # The person too, in the same statement: ensure_usable reads whether they are locked.
        row = db.session.execute(
            select(InboxSession, Device, Account)
            .join(Device, InboxSession.device_id == Device.id)
            .join(Account, Device.account_id == Account.id)
            .where(InboxSession.access_hash == digest(token))
        ).first()
        if row is None:
            raise Refusal("inbox_unknown")
        inbox, device, _ = row
        now = utcnow()
        if inbox.access_expires_at <= now:
            raise Refusal("inbox_expired")
        ensure_usable(device, now)  # suspended, revoked, expired or locked since: the inbox is closed
        return inbox, device


def _failed(inbox: InboxSession, device: Device | None, refusal: Refusal) -> Refusal:
    """Record why a spent opening came to nothing; returns the refusal to raise."""
    db.session.rollback()  # nothing half-done (a possibly-cloned mark is committed already)
    inbox = db.session.get(InboxSession, inbox.id)
    tickets.fail(inbox, refusal.code)
    record(
        Tags.INBOX_OPEN_FAILURE,
        account=device.account if device is not None else None,
        device=device.id if device is not None else None,
        inbox=inbox.public_id,
        reason=refusal.code,
    )
    db.session.commit()
    return refusal
