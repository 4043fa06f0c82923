"""OpenID Connect Back-Channel Logout 1.0: telling the sites a person logged in to that the session ended.

When a MoCert session ends — the person logs out (here or through a site's RP-initiated logout), an
administrator revokes or suspends their phone or locks their account, the person unbinds the phone —
:func:`queue` notes, in that same transaction, a :class:`~app.models.BackchannelLogout` for every client
the session logged in to (an authorization code of the session that was exchanged) that registered a
``backchannel_logout_uri``. Nothing is sent then: the HTTP call must not happen inside the transaction, nor
be made for a change that is rolled back.

After the commit, each server process's courier (``app/logout_courier.py``) calls
:meth:`BackchannelLogouts.deliver_due`: it claims the due rows (committed), posts each logout token outside
any transaction (``app/backchannel.py``), then records what came of it. A site that does not answer 200 is
tried again after a wait that doubles; after the last attempt the row is given up (``failed_at``). Both
ends are audited: ``oidc:backchannel_logout:sent`` and ``oidc:backchannel_logout:failed``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from sqlalchemy import or_, select, update

from .. import backchannel
from ..audit import Tags, record
from ..extensions import db
from ..models import Account, BackchannelLogout, OidcAuthorizationCode, OidcClient, utcnow

log = logging.getLogger(__name__)

# Set on the session by queue(): its commit wakes the courier (app/logout_courier.py); a rollback drops it.
QUEUED = "mocert.backchannel_logouts_queued"
BATCH = 20  # rows one round claims: a round's posts run together, a few at a time
PARALLEL = 4  # posts at once in a round: one slow site costs the others nothing but a thread


def queue(auth_session_ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Note a logout token owed to each site each of these (just ended) sessions logged in to, in the caller's
    transaction (not committed). Returns how many were queued."""
    ids = sorted(set(auth_session_ids))
    if not ids:
        return 0
    now = now or utcnow()
    owed = db.session.execute(
        select(OidcAuthorizationCode.client_id, OidcAuthorizationCode.account_id, OidcAuthorizationCode.auth_session_id)
        .join(OidcClient, OidcAuthorizationCode.client_id == OidcClient.id)
        .where(
            OidcAuthorizationCode.auth_session_id.in_(ids),
            # Exchanged (the site got an ID token of this session), or still exchangeable: an exchange whose
            # transaction runs beside this one is not seen here, and its ID token must not go untold.
            or_(OidcAuthorizationCode.used_at.is_not(None), OidcAuthorizationCode.expires_at > now),
            OidcClient.backchannel_logout_uri.is_not(None),
        )
        .distinct()
    ).all()
    for client_id, account_id, auth_session_id in owed:
        db.session.add(BackchannelLogout(client_id=client_id, account_id=account_id, auth_session_id=auth_session_id,
                                         created_at=now, next_attempt_at=now, attempts=0))
    if owed:
        db.session.info[QUEUED] = True
    return len(owed)


@dataclass(frozen=True)
class _Post:
    """One attempt, as the round makes it outside the transaction: the row, where to, and the token."""

    delivery_id: int
    uri: str
    logout_token: str


# Makes the logout token of one delivery: (client, account id, auth session id) -> signed JWT.
TokenMaker = Callable[[OidcClient, int, int], str]


class BackchannelLogouts:
    """Built once (``app/wiring.py``): how many attempts, the first wait between them (doubling), the timeout
    of one post, how the token is made (``oidc.oauth2.logout_token``) and posted (``backchannel``)."""

    def __init__(
        self,
        *,
        make_token: TokenMaker,
        attempts: int,
        retry_after: timedelta,
        timeout: float,
        post: Callable[..., None] = backchannel.post_logout_token,
    ) -> None:
        self.make_token, self.post = make_token, post
        self.attempts, self.retry_after, self.timeout = max(1, attempts), retry_after, timeout

    def wait_after(self, attempts: int) -> timedelta:
        """How long after its ``attempts``-th attempt a delivery is tried again: 1, 2, 4, ... times ``retry_after``."""
        return self.retry_after * 2 ** min(attempts - 1, 16)

    def deliver_due(self, *, now: datetime | None = None, limit: int = BATCH) -> dict[str, int]:
        """One round: claim the due deliveries (committed), post their tokens outside any transaction, record
        the outcomes (committed). Returns ``{"sent", "retrying", "failed"}`` counts."""
        now = now or utcnow()
        due = list(db.session.scalars(
            select(BackchannelLogout)
            .where(BackchannelLogout.sent_at.is_(None), BackchannelLogout.failed_at.is_(None),
                   BackchannelLogout.next_attempt_at <= now)
            .order_by(BackchannelLogout.next_attempt_at, BackchannelLogout.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # another process's courier takes the others (PostgreSQL)
        ))
        counts = {"sent": 0, "retrying": 0, "failed": 0}
        if not due:
            db.session.rollback()
            return counts
        posts, unregistered, unsigned = [], [], []
        # Claimed for longer than the round can take (its posts go PARALLEL at a time, each up to a connect
        # and a read timeout): a courier elsewhere, or this one after a crash, takes a row only once that
        # passed. The outcome then sets when it is tried again.
        waves = -(-len(due) // PARALLEL)
        claimed_until = now + timedelta(seconds=waves * 2 * self.timeout + 30)
        for row in due:
            row.attempts += 1
            row.next_attempt_at = claimed_until
            client = db.session.get(OidcClient, row.client_id)
            if client is None or not client.backchannel_logout_uri:
                unregistered.append(row.id)  # the site removed its URI meanwhile: nothing to post to
                continue
            try:
                token = self.make_token(client, row.account_id, row.auth_session_id)
            except Exception:  # noqa: BLE001 - one row that cannot be signed (its key gone) must not stop the rest
                log.exception("the logout token of back-channel logout %s could not be made", row.id)
                unsigned.append(row.id)
                continue
            posts.append(_Post(row.id, client.backchannel_logout_uri, token))
        claims = {row.id: row.attempts for row in due}
        db.session.commit()  # the claims; no transaction is open while the sites are called

        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(posts) or 1), thread_name_prefix="logout") as pool:
            reasons = list(pool.map(self._attempt, posts))
        outcomes = {post.delivery_id: reason for post, reason in zip(posts, reasons)}
        outcomes.update({delivery_id: "unregistered" for delivery_id in unregistered})
        outcomes.update({delivery_id: "token" for delivery_id in unsigned})

        finished = utcnow()
        for delivery_id, reason in outcomes.items():
            attempts = claims[delivery_id]
            given_up = reason is not None and (attempts >= self.attempts or reason == "unregistered")
            values = (dict(sent_at=finished, last_error=None) if reason is None
                      else dict(failed_at=finished, last_error=reason) if given_up
                      else dict(next_attempt_at=now + self.wait_after(attempts), last_error=reason))
            # Only the claim this round made: a row whose claim ran out and that another courier took since
            # (attempts moved on) is that courier's to record, so one delivery never has two outcomes.
            recorded = db.session.execute(
                update(BackchannelLogout)
                .where(BackchannelLogout.id == delivery_id, BackchannelLogout.attempts == attempts,
                       BackchannelLogout.sent_at.is_(None), BackchannelLogout.failed_at.is_(None))
                .values(**values)
                .returning(BackchannelLogout.client_id, BackchannelLogout.account_id, BackchannelLogout.auth_session_id)
            ).first()
            if recorded is None:
                continue
            client = db.session.get(OidcClient, recorded.client_id)
            about = dict(account=db.session.get(Account, recorded.account_id),
                         client=client.client_id if client else None, auth_session=recorded.auth_session_id,
                         attempts=attempts)
            if reason is None:
                record(Tags.OIDC_BACKCHANNEL_LOGOUT_SENT, **about)
                counts["sent"] += 1
            elif given_up:
                record(Tags.OIDC_BACKCHANNEL_LOGOUT_FAILED, reason=reason, **about)
                counts["failed"] += 1
            else:
                log.warning("back-channel logout %s to client %s failed (%s); attempt %s of %s, again at %s",
                            delivery_id, about["client"], reason, attempts, self.attempts, values["next_attempt_at"])
                counts["retrying"] += 1
        db.session.commit()
        return counts

    def _attempt(self, post: _Post) -> str | None:
        """None when the site took the token, else why not. Runs in the round's pool: HTTP only."""
        try:
            self.post(post.uri, post.logout_token, timeout=self.timeout)
        except backchannel.DeliveryFailed as exc:
            return exc.reason
        except Exception:  # noqa: BLE001 - a bug here must not leave the claimed row without an outcome
            log.exception("posting back-channel logout %s failed unexpectedly", post.delivery_id)
            return "error"
        return None
