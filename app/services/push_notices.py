"""Web Push notices to the phones an agency's request was pushed to, and the phones' subscriptions.

A notice says only that a request from an agency waits and where the inbox is: nothing that answers it,
nothing about the person (the push service, and the phone's lock screen, see it). It is sent once the
request is committed and never fails the agency's call: the request waits in the inbox whether or not a
notice arrives. A push service that says the subscription is gone (404, 410) has it forgotten; any other
failure is logged and audited.

Without a VAPID key (``MOCERT_VAPID_PRIVATE_KEY``) there are no notices: the inbox still lists the requests
while it is open.
"""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .. import webpush
from ..audit import Tags, record
from ..extensions import db
from ..models import Device, DeviceStatus, PushSubscription, SpRequest, utcnow
from .refusals import Refusal

log = logging.getLogger(__name__)

SUBSCRIPTIONS_PER_DEVICE = 3  # a phone's browsers (or profiles); the oldest goes when a fourth subscribes


class PushNotices:
    """Built once (``app/wiring.py``) from the VAPID key (None: no notices), the push services allowed,
    the inbox's URL and the timeout of one round of notices."""

    def __init__(
        self, *, vapid: webpush.VapidKey | None, services: webpush.PushServices, inbox_url: str, timeout: float,
    ) -> None:
        self.vapid, self.services, self.inbox_url, self.timeout = vapid, services, inbox_url, timeout

    @property
    def enabled(self) -> bool:
        return self.vapid is not None

    @property
    def application_server_key(self) -> str | None:
        """MoCert's public VAPID key, which a browser subscribes under; None without notices."""
        return self.vapid.application_server_key if self.vapid is not None else None

    def subscribe(self, device: Device, value: object) -> PushSubscription:
        """Keep the subscription a phone's browser gave (``PushSubscription.toJSON()``) for ``device``; the
        same endpoint again replaces its keys (and its phone: a browser bound anew). Raises :class:`Refusal`."""
        if self.vapid is None:
            raise Refusal("push_disabled")
        try:
            subscription = webpush.subscription_of(value, self.services)
        except webpush.InvalidSubscription as exc:
            raise Refusal("invalid_push_subscription", case="push_service" if exc.reason == "push_service"
                          else "subscription", reason=exc.reason) from None
        for attempt in range(2):
            row = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == subscription.endpoint))
            if row is None:
                row = PushSubscription(endpoint=subscription.endpoint)
                db.session.add(row)
            row.device_id, row.p256dh, row.auth, row.created_at = (
                device.id, subscription.p256dh, subscription.auth, utcnow())
            try:
                db.session.flush()
            except IntegrityError:  # the same browser subscribing twice at once: the other one's row is there
                db.session.rollback()
                if attempt:
                    raise
                continue
            break
        older = db.session.scalars(
            select(PushSubscription.id).where(PushSubscription.device_id == device.id)
            .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc()).offset(SUBSCRIPTIONS_PER_DEVICE)
        ).all()
        if older:
            db.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(older)))
        record(Tags.PUSH_SUBSCRIBED, account=device.account, device=device.id,
               push_service=_origin(subscription.endpoint), replaced=len(older))
        db.session.commit()
        return row

    def announce(self, sp_request: SpRequest) -> None:
        """Send the notices of a pushed request that was just committed, to every subscription of the phones
        it was pushed to. Never raises: whatever goes wrong is logged (and the request waits in the inbox)."""
        if self.vapid is None:
            return
        try:
            self._announce(sp_request)
        except Exception:  # noqa: BLE001 - the agency's request is made: nothing here may undo that answer
            log.exception("the push notices of request %s were not sent", sp_request.public_id)
            db.session.rollback()

    def _announce(self, sp_request: SpRequest) -> None:
        phones = [Device.account_id == sp_request.account_id, Device.status == DeviceStatus.ACTIVE.value]
        if sp_request.target_device_id is not None:  # pushed to the one phone the agency named
            phones.append(Device.id == sp_request.target_device_id)
        rows = list(db.session.scalars(
            select(PushSubscription).join(Device, PushSubscription.device_id == Device.id)
            .where(*phones).order_by(PushSubscription.id)
        ))
        if not rows:
            return
        now = utcnow()
        message = {"kind": "sp_request", "sp_name": sp_request.agency.name, "url": self.inbox_url}
        outcomes = webpush.send_all(
            [webpush.Subscription(r.endpoint, r.p256dh, r.auth) for r in rows], message, vapid=self.vapid,
            ttl=_seconds_left(sp_request.expires_at, now), timeout=self.timeout,
        )
        sent = failed = removed = 0
        for row, outcome in zip(rows, outcomes):
            if outcome is None:
                sent += 1
                row.last_sent_at = now
            elif isinstance(outcome, webpush.SubscriptionGone):
                removed += 1
                record(Tags.PUSH_SUBSCRIPTION_REMOVED, account=sp_request.account, device=row.device_id,
                       push_service=_origin(row.endpoint), reason=outcome.reason)
                db.session.delete(row)
            else:
                failed += 1
                log.warning("push notice of request %s to device %s failed: %s", sp_request.public_id,
                            row.device_id, outcome.reason)
                record(Tags.PUSH_FAILURE, account=sp_request.account, device=row.device_id,
                       sp_request=sp_request.public_id, push_service=_origin(row.endpoint), reason=outcome.reason)
        record(Tags.PUSH_SENT, account=sp_request.account, sp_request=sp_request.public_id,
               agency=sp_request.agency.sp_service_id, sent=sent, failed=failed, removed=removed)
        db.session.commit()


def _seconds_left(expires_at: datetime, now: datetime) -> int:
    """How long the push service should hold the notice for an offline phone: until the request expires."""
    return max(0, int((expires_at - now).total_seconds()))


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
