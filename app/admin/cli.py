"""``flask --app wsgi admin grant|remove`` and ``admin token create|list|revoke``.

Whoever runs these holds the server, so they act as the actor ``cli`` without a session; the first
admin can only be made this way.
"""

from __future__ import annotations

import json

import click
from flask import Flask


def register_admin_cli(app: Flask) -> None:
    from .. import refusals, wiring
    from ..services import account_admin, service_tokens, staff
    from ..services.refusals import Refusal

    @app.cli.group("admin")
    def admin_group() -> None:
        """Administrators, auditors and service tokens."""

    @admin_group.command("grant")
    @click.argument("national_id")
    @click.option("--role", type=click.Choice(sorted(staff.ROLES)), required=True)
    @click.option("--reason", default="granted with flask admin grant", show_default=True)
    def grant(national_id: str, role: str, reason: str) -> None:
        """Give the person with this national ID (registered already) the role."""
        account = _account(national_id)
        account_admin.grant_role(account, role, actor="cli", reason=reason)
        click.echo(f"{account.name} ({account.national_id_masked}) is now {role}")

    @admin_group.command("remove")
    @click.argument("national_id")
    @click.option("--reason", default="removed with flask admin remove", show_default=True)
    def remove(national_id: str, reason: str) -> None:
        """Take the person's role away."""
        account = _account(national_id)
        account_admin.grant_role(account, None, actor="cli", reason=reason)
        click.echo(f"{account.name} ({account.national_id_masked}) has no role now")

    def _account(national_id: str):
        from iccard.national_id import InvalidNationalId

        try:
            account = account_admin.account_by_national_id(
                national_id, national_id_hash=wiring.parts().national_id_hash
            )
        except InvalidNationalId:
            raise click.UsageError("that is not a valid national ID") from None
        if account is None:
            raise click.UsageError("nobody with that national ID has registered (log in with the card first)")
        return account

    @admin_group.group("token")
    def token() -> None:
        """Service tokens for automation against /api/v1/admin."""

    @token.command("create")
    @click.option("--name", required=True)
    @click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(staff.TOKEN_SCOPES))
    @click.option("--expires-days", type=int, default=None, help="Default: until revoked.")
    def create(name: str, scopes: tuple[str, ...], expires_days: int | None) -> None:
        """Prints one JSON object {"id", "service_token"}; the token is shown only now."""
        try:
            row, raw = service_tokens.create(actor="cli", name=name, scopes=list(scopes),
                                             expires_in_days=expires_days)
        except Refusal as refusal:
            raise click.UsageError(refusals.message(refusal)) from None
        click.echo(json.dumps({"id": row.id, "service_token": raw}))

    @token.command("list")
    def list_() -> None:
        """One line per token: id, state, scopes, name."""
        for row in service_tokens.list_all():
            state = "revoked" if row.revoked_at else "active"
            click.echo(f"{row.id}\t{state}\t{' '.join(row.scopes)}\t{row.name}")

    @token.command("revoke")
    @click.argument("token_id", type=int)
    @click.option("--reason", default="revoked with flask admin token revoke", show_default=True)
    def revoke(token_id: str, reason: str) -> None:
        cli_operator = staff.Operator("cli", frozenset({staff.TOKENS_WRITE}))
        try:
            service_tokens.revoke(cli_operator, token_id, reason)
        except Refusal as refusal:
            raise click.UsageError(refusals.message(refusal)) from None
        click.echo(f"token {token_id} revoked")
