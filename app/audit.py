"""The audit trail's one vocabulary of event tags, and the one way to append an event.

``record`` adds the event to the current database session and does not commit: the caller commits it
together with the change it records, so there is never a change without its event or the reverse. It costs
the event's INSERT alone and waits for no other writer: the sealer links it into the trail's hash chain
soon after the commit (``app/audit_chain.py``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flask import has_request_context, request

from . import audit_chain
from .extensions import db
from .input_checks import make_storable
from .models import Account, AuditEvent, utcnow


class Tags(StrEnum):
    """Every event the trail knows; stored as its value (``"card:login:success"``)."""

    CARD_LOGIN_SUCCESS = "card:login:success"
    CARD_LOGIN_FAILURE = "card:login:failure"
    CARD_LINKED = "card:linked"
    ACCOUNT_REGISTERED = "account:registered"
    REGISTRATION_FAILURE = "account:registration:failure"
    IDENTITY_CONFIRMED = "account:identity:confirmed"
    CONFLICT_NOTICE_SENT = "account:conflict:notice_sent"
    EMAIL_CODE_SENT = "account:email:code_sent"
    EMAIL_CONFIRMED = "account:email:confirmed"
    EMAIL_CODE_FAILURE = "account:email:failure"
    EMAIL_CODE_LOCKED = "account:email:locked"
    LOGOUT = "session:logout"
    SESSION_IDLE_ENDED = "session:idle_ended"
    BINDING_STARTED = "device:binding:started"
    BINDING_SCANNED = "device:binding:scanned"
    BINDING_FAILED = "device:binding:failure"
    BINDING_REPLACED = "device:binding:replaced"  # ended unused: its session made another, or bound a phone
    DEVICE_BOUND = "device:bound"
    DEVICE_RENAMED = "device:renamed"
    DEVICE_UNBOUND = "device:unbound"
    DEVICE_RENEWED = "device:renewed"
    DEVICE_CERTIFICATE_REISSUED = "device:certificate:reissued"
    DEVICE_CERTIFICATE_SUPERSEDED = "device:certificate:superseded"
    DEVICE_POSSIBLY_CLONED = "device:possibly_cloned"
    DEVICE_SUSPENDED = "device:suspended"
    DEVICE_RESUMED = "device:resumed"
    DEVICE_REVOKED = "device:revoked"
    OIDC_CONSENT_GRANTED = "oidc:consent:granted"
    OIDC_CONSENT_DENIED = "oidc:consent:denied"
    OIDC_LOGIN_SUCCESS = "oidc:login:success"
    MOBILE_LOGIN_STARTED = "mobile:login:started"
    MOBILE_LOGIN_SCANNED = "mobile:login:scanned"
    MOBILE_LOGIN_APPROVED = "mobile:login:approved"
    MOBILE_LOGIN_SUCCESS = "mobile:login:success"
    MOBILE_LOGIN_FAILURE = "mobile:login:failure"
    MOBILE_LOGIN_DECLINED = "mobile:login:declined"  # the person said no on the phone ("not me")
    OIDC_TOKEN_ISSUED = "oidc:token:issued"
    OIDC_TOKEN_REVOKED = "oidc:token:revoked"
    OIDC_CODE_REUSED = "oidc:code:reused"
    OIDC_NATIONAL_ID_CONFIRMED = "oidc:national_id:confirmed"
    OIDC_NATIONAL_ID_MISMATCH = "oidc:national_id:mismatch"
    OIDC_NATIONAL_ID_LOCKED = "oidc:national_id:locked"
    OIDC_LOGOUT = "oidc:logout"
    # Back-Channel Logout: a logout token accepted by the site, or given up on after the last attempt.
    OIDC_BACKCHANNEL_LOGOUT_SENT = "oidc:backchannel_logout:sent"
    OIDC_BACKCHANNEL_LOGOUT_FAILED = "oidc:backchannel_logout:failed"
    OIDC_CLIENT_ADDED = "oidc:client:added"
    OIDC_CLIENT_DISABLED = "oidc:client:disabled"
    OIDC_CLIENT_ENABLED = "oidc:client:enabled"
    OIDC_CLIENT_CHANGED = "oidc:client:changed"
    OIDC_CLIENT_SECRET_ROTATED = "oidc:client:secret_rotated"
    AGENCY_ADDED = "agency:added"
    AGENCY_DISABLED = "agency:disabled"
    AGENCY_KEY_ROTATED = "agency:key_rotated"
    SP_REQUEST_MADE = "sp:request:made"  # an agency's ticket (ATH, SIGN, BATSIGN), by QR, same phone or push
    SP_API_REFUSED = "sp:api:refused"  # any call of the agencies' API refused, with its code
    SP_DEVICE_STATUS_CHECKED = "sp:device_status:checked"
    SP_REQUEST_SCANNED = "sp:request:scanned"
    SP_REQUEST_APPROVED = "sp:request:approved"
    SP_REQUEST_DECLINED = "sp:request:declined"
    SP_APPROVAL_FAILURE = "sp:approval:failure"
    INBOX_OPENED = "inbox:opened"  # a phone proved itself with its passkey and sees its pushed requests
    INBOX_OPEN_FAILURE = "inbox:open:failure"
    PUSH_SUBSCRIBED = "push:subscribed"  # a phone's browser gave its Web Push subscription
    PUSH_SENT = "push:sent"  # the notices of one pushed request: how many went, failed, were gone
    PUSH_FAILURE = "push:failure"  # one notice not accepted by its push service (the request waits anyway)
    PUSH_SUBSCRIPTION_REMOVED = "push:subscription:removed"  # the push service said it is gone (404, 410)
    # SP-API-WEB-01: the form the agency's callback receives, handed to the person's page (once), after the
    # person typed their national ID (checked as the consent page checks it: app/oidc/national_id.py).
    SP_REQUEST_RELEASED = "sp:request:released"
    SP_NATIONAL_ID_CONFIRMED = "sp:national_id:confirmed"
    SP_NATIONAL_ID_MISMATCH = "sp:national_id:mismatch"
    SP_NATIONAL_ID_LOCKED = "sp:national_id:locked"
    ACCOUNT_LOCKED = "account:locked"
    ACCOUNT_UNLOCKED = "account:unlocked"
    ROLE_GRANTED = "admin:role:granted"
    ROLE_REMOVED = "admin:role:removed"
    SERVICE_TOKEN_CREATED = "admin:service_token:created"
    SERVICE_TOKEN_REVOKED = "admin:service_token:revoked"
    ADMIN_DENIED = "admin:denied"
    ADMIN_SEARCHED = "admin:accounts:searched"
    AUDIT_EXPORTED = "admin:audit:exported"


def record(
    tag: Tags,
    *,
    account: Account | None = None,
    actor: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append an event to the session (not committed). ``actor`` defaults to the account, or anonymous.

    Whatever a caller passes is made storable and queryable first: NUL and lone surrogates (in details'
    keys and values, the actor, the user agent) become U+FFFD, since PostgreSQL cannot store NUL in text
    and fails ``->>`` on a JSON row holding ``\\u0000``, and UTF-8 cannot encode a lone surrogate.
    """
    if actor is None:
        actor = f"account:{account.id}" if account is not None and account.id is not None else "anonymous"
    event = AuditEvent(
        occurred_at=utcnow(),  # set here, not at insert: the hash covers it
        tag=tag.value,
        actor=make_storable(actor),
        account_id=account.id if account is not None else None,
        details=audit_chain.as_stored(make_storable(details)),
    )
    if has_request_context():
        event.ip = make_storable(request.remote_addr)
        event.user_agent = make_storable((request.user_agent.string or "")[:400]) or None
    db.session.add(event)
    return event
