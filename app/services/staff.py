"""Who may operate: roles and service tokens as scopes, the operator of a change, and the reason it gives.

An :class:`Operator` is whoever acts: a logged-in admin or auditor, or a service token for automation.
Every state change names its operator as the audit actor and carries a reason. Privileges are scopes, so
a role and a token are checked the same way; a refusal is itself a security event and is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..audit import Tags, record
from ..extensions import db
from ..models import Account
from .refusals import Refusal

READ = "read"
DEVICES_WRITE = "devices:write"
ACCOUNTS_WRITE = "accounts:write"
CLIENTS_WRITE = "clients:write"
AGENCIES_WRITE = "agencies:write"  # apart from sites: a token that automates OIDC clients makes no agency API keys
ROLES_WRITE = "roles:write"  # admins only: never through a service token
TOKENS_WRITE = "tokens:write"  # admins only: a token cannot mint tokens
TOKEN_SCOPES = (READ, DEVICES_WRITE, ACCOUNTS_WRITE, CLIENTS_WRITE, AGENCIES_WRITE)
ROLES = {
    "auditor": frozenset({READ}),
    "admin": frozenset({*TOKEN_SCOPES, ROLES_WRITE, TOKENS_WRITE}),
}
REASON_MAX = 200


@dataclass(frozen=True)
class Operator:
    actor: str  # the audit actor: "account:<id>" or "service:<id>"
    scopes: frozenset[str]
    account_id: int | None = None  # the admin's own account (None for a service token)
    role: str | None = None

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        """Refuses ``forbidden`` (with the scope), audited and committed, when the operator lacks ``scope``."""
        if scope not in self.scopes:
            record(Tags.ADMIN_DENIED, actor=self.actor, scope=scope)
            db.session.commit()
            raise Refusal("forbidden", scope=scope)


def operator_for_account(account: Account) -> Operator | None:
    """The operator a logged-in person is, or None when they hold no role."""
    scopes = ROLES.get(account.role or "")
    if scopes is None:
        return None
    return Operator(f"account:{account.id}", scopes, account_id=account.id, role=account.role)


def refuse_non_staff(account: Account, *, path: str) -> Refusal:
    """The refusal for a person without a role who asked for a staff page, audited and committed."""
    record(Tags.ADMIN_DENIED, account=account, scope="staff", path=path[:200])
    db.session.commit()
    return Refusal("forbidden", case="staff")


def reason_of(value: object) -> str:
    """Every change an operator makes says why; the reason goes into the audit trail."""
    if not isinstance(value, str) or not value.strip():
        raise Refusal("reason_required")
    if len(value.strip()) > REASON_MAX:
        raise Refusal("reason_too_long", max=REASON_MAX)
    return value.strip()


def iso(moment: datetime | None) -> str | None:
    """A moment as the staff's views show it: ISO 8601, or None."""
    return moment.isoformat() if moment is not None else None
