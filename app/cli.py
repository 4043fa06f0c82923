"""``flask --app wsgi pki init-demo``, ``clients add|list|disable``, ``oidc rotate-key``,
``agencies add|list|disable|rotate-key``."""

from __future__ import annotations

import click
from flask import Flask, current_app

from iccard.demo_pki import DemoPKI

from .audit_chain import register_audit_cli



def _refused(refusal) -> click.UsageError:
    """A refusal as a command's error: the same words the API and the console give, zh-TW first and English
    second (a command has no request to choose a language from); exit status 2, nothing changed."""
    from flask_babel import force_locale

    from . import refusals

    words = []
    for locale in ("zh_Hant_TW", "en"):
        with force_locale(locale):
            words.append(refusals.message(refusal))
    return click.UsageError(f"{refusal.code}: {' / '.join(words)}")

def register_cli(app: Flask) -> None:
    from .admin.cli import register_admin_cli

    register_oidc_cli(app)
    register_agencies_cli(app)
    register_audit_cli(app)
    register_admin_cli(app)
    from .mobile_pki import cli as mobile_certificates_cli  # flask mobile-certificates reissue

    app.cli.add_command(mobile_certificates_cli)

    @app.cli.command("purge")
    def purge() -> None:
        """Delete spent card-login challenges, stale bindings and old email codes (run it daily)."""
        from .services.housekeeping import purge as run_purge

        for kind, count in run_purge().items():
            click.echo(f"{kind}: {count} removed")

    @app.cli.group()
    def pki() -> None:
        """The demo PKI."""

    @pki.command("init-demo")
    @click.option("--force", is_flag=True, help="Replace an existing demo PKI (its cards stop working).")
    @click.option("--base-url", default=None, help="Where the demo CRL and OCSP are served (MOCERT_PUBLIC_URL).")
    def init_demo(force: bool, base_url: str | None) -> None:
        """Create the demo root, issuing CA and cards under instance/ (skipped when present)."""
        from .oidc.keys import ensure_keys

        directory = current_app.config["DEMO_PKI_DIR"]
        for key in ensure_keys(current_app.config["OIDC_KEYS_DIR"]):
            click.echo(f"OIDC {key.alg} signing key {key.kid} created in {current_app.config['OIDC_KEYS_DIR']}")
        if DemoPKI.exists(directory) and not force:
            existing = DemoPKI(directory)
            if existing.ensure_mobile_ca():
                click.echo(f"demo mobile-certificate CA added to {directory}")
            for card_number in existing.ensure_card_encryption():
                click.echo(f"  {card_number}: encryption certificate added")
            click.echo(f"demo PKI already in {directory}")
            made_for, serving = existing.manifest["base_url"], (base_url or current_app.config["PUBLIC_URL"]).rstrip("/")
            if made_for != serving:
                # Its certificates name made_for for their CRL and OCSP, and the server checks them there.
                click.echo(
                    f"warning: this demo PKI was made for {made_for}, and this server is {serving}: its cards name "
                    f"{made_for} for their revocation status, so card logins will fail their revocation check. "
                    f"Serve it at {made_for} again (make run with the first run's PORT), or start the demo afresh "
                    f"with `make clean` (its database goes too).",
                    err=True,
                )
            return
        click.echo("creating the demo PKI (root, issuing CA, 5 cards)…")
        pki_ = DemoPKI.create(directory, base_url or current_app.config["PUBLIC_URL"])
        for card in pki_.cards:
            click.echo(f"  {card.card_number}  {card.name}  {card.national_id}  {card.status}")
        click.echo(f"demo PKI written to {directory} (PIN {pki_.cards[0].pin} for every card)")


def register_oidc_cli(app: Flask) -> None:
    """``flask clients add|list|disable`` and ``flask oidc rotate-key``."""
    import json

    from sqlalchemy import select

    from .extensions import db
    from .models import OidcClient
    from .oidc import keys as oidc_keys

    @app.cli.group()
    def clients() -> None:
        """OpenID Connect relying parties."""

    @clients.command("add")
    @click.option("--name", required=True, help="Shown to the person on the consent page.")
    @click.option("--redirect-uri", "redirect_uris", multiple=True, required=True, help="Exact match; repeatable.")
    @click.option("--post-logout-redirect-uri", "logout_uris", multiple=True, help="Exact match; repeatable.")
    @click.option("--public", is_flag=True, help="A public client (no secret; PKCE required).")
    @click.option("--scope", "scopes", multiple=True, help="Allowed scopes (default: openid profile email phone "
                  "offline_access).")
    @click.option("--allow-national-id", is_flag=True, help="Allow the national_id scope: the full ID, which the "
                  "person types at each such authorization, and its masked form.")
    @click.option("--no-card-login", is_flag=True, help="Its login page offers the phone only, not the IC card.")
    @click.option(
        "--token-endpoint-auth-method",
        type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]),
        default=None,
    )
    @click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False), help="Its public JWKS (private_key_jwt).")
    @click.option("--subject-type", type=click.Choice(["pairwise", "public"]), default="pairwise")
    @click.option("--sector", default=None, help="Sector for pairwise subjects (default: the redirect URIs' host).")
    @click.option("--id-token-alg", type=click.Choice(list(oidc_keys.ALGORITHMS)), default="RS256")
    @click.option("--client-id", default=None)
    @click.option("--backchannel-logout-uri", default=None, help="Where MoCert posts a logout token (OpenID Connect "
                  "Back-Channel Logout) when a session the site logged in through ends.")
    @click.option("--backchannel-logout-session-required", is_flag=True,
                  help="The site needs sid in the logout token (MoCert always sends it).")
    def add(name, redirect_uris, logout_uris, public, scopes, allow_national_id, no_card_login,
            token_endpoint_auth_method, jwks_file, subject_type, sector, id_token_alg, client_id,
            backchannel_logout_uri, backchannel_logout_session_required) -> None:
        """Register a client; prints one JSON object {"client_id", "client_secret"} (the secret only now)."""
        from .services import clients as client_service
        from .services.refusals import Refusal

        method = token_endpoint_auth_method or ("none" if public else "client_secret_basic")
        if public != (method == "none"):
            raise click.UsageError("--public goes with --token-endpoint-auth-method none")
        jwks = json.loads(open(jwks_file, encoding="utf-8").read()) if jwks_file else None
        try:
            client, secret = client_service.create(
                actor="cli",
                name=name,
                redirect_uris=list(redirect_uris),
                post_logout_redirect_uris=list(logout_uris),
                scopes=" ".join(scopes).split() or None,
                allow_national_id=allow_national_id,
                allow_card_login=not no_card_login,
                token_endpoint_auth_method=method,
                jwks=jwks,
                subject_type=subject_type,
                sector=sector,
                id_token_alg=id_token_alg,
                client_id=client_id,
                backchannel_logout_uri=backchannel_logout_uri,
                backchannel_logout_session_required=backchannel_logout_session_required,
            )
        except Refusal as refusal:
            raise _refused(refusal) from None
        click.echo(json.dumps({"client_id": client.client_id, "client_secret": secret}))

    @clients.command("list")
    def list_() -> None:
        """One line per client: id, state, auth method, name."""
        for client in db.session.scalars(select(OidcClient).order_by(OidcClient.id)):
            state = "disabled" if client.disabled_at else "active"
            click.echo(f"{client.client_id}\t{state}\t{client.token_endpoint_auth_method}\t{client.name}")

    @clients.command("disable")
    @click.argument("client_id")
    def disable(client_id: str) -> None:
        """The client can no longer authorize, get tokens or use them."""
        from .services import clients as client_service
        from .services.refusals import Refusal

        try:
            client_service.disable(client_service.get(client_id), actor="cli", reason="flask clients disable")
        except Refusal:
            raise click.UsageError(f"no client {client_id}") from None
        click.echo(f"client {client_id} disabled")

    @app.cli.group()
    def oidc() -> None:
        """The OpenID Connect provider's signing keys."""

    @oidc.command("rotate-key")
    @click.option("--alg", type=click.Choice(list(oidc_keys.ALGORITHMS)), default="RS256")
    def rotate_key(alg: str) -> None:
        """Add a new signing key; it signs from now on, the old one stays published for a while."""
        key = oidc_keys.create_key(current_app.config["OIDC_KEYS_DIR"], alg)
        click.echo(f"new {key.alg} signing key {key.kid} in {current_app.config['OIDC_KEYS_DIR']}")


def register_agencies_cli(app: Flask) -> None:
    """``flask agencies add|list|disable|rotate-key``: the agencies (需用機關) of the TW FidO SP API."""
    import json

    from .services import agencies as agency_service
    from .services.refusals import Refusal
    from .wiring import parts

    def agency_named(sp_service_id: str):
        try:
            return agency_service.get(sp_service_id)
        except Refusal as refusal:
            raise _refused(refusal) from None

    @app.cli.group()
    def agencies() -> None:
        """Agencies (需用機關) calling the TW FidO service-provider API."""

    @agencies.command("add")
    @click.option("--name", required=True, help="The agency's name, shown to the person on the phone.")
    @click.option("--allow-ip", "allowed_ips", multiple=True, metavar="CIDR",
                  help="An address or network its calls come from; repeatable (none: any address).")
    @click.option("--callback-url", default=None, help="Where the browser flow (SP-API-WEB-01) posts its answer.")
    def add(name: str, allowed_ips: tuple[str, ...], callback_url: str | None) -> None:
        """Register an agency; prints one JSON object with its sp_service_id and api_key (the key only now)."""
        try:
            agency, api_key = parts().agencies.add(
                actor="cli", name=name, allowed_ips=list(allowed_ips), callback_url=callback_url
            )
        except Refusal as refusal:
            raise _refused(refusal) from None
        click.echo(json.dumps({
            "sp_service_id": agency.sp_service_id,
            "api_key": api_key,
            "name": agency.name,
            "allowed_ips": list(agency.allowed_ips),
            "callback_url": agency.callback_url,
        }, ensure_ascii=False))

    @agencies.command("list")
    def list_() -> None:
        """One JSON object a line per agency: everything but its key."""
        for agency in agency_service.list_all():
            click.echo(json.dumps(agency_service.agency_view(agency), ensure_ascii=False))

    @agencies.command("disable")
    @click.argument("sp_service_id")
    def disable(sp_service_id: str) -> None:
        """Refuse the agency's calls from now on."""
        parts().agencies.disable(agency_named(sp_service_id), actor="cli", reason="flask agencies disable")
        click.echo(f"agency {sp_service_id} disabled")

    @agencies.command("rotate-key")
    @click.argument("sp_service_id")
    def rotate_key(sp_service_id: str) -> None:
        """A new API key at once (the old one stops working); prints {"sp_service_id", "api_key"}."""
        agency = agency_named(sp_service_id)
        api_key = parts().agencies.rotate_key(agency, actor="cli", reason="flask agencies rotate-key")
        click.echo(json.dumps({"sp_service_id": agency.sp_service_id, "api_key": api_key}))
