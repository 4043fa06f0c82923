"""``flask --app wsgi pki init-demo`` and friends."""

from __future__ import annotations

import click
from flask import Flask, current_app

from iccard.demo_pki import DemoPKI


def register_cli(app: Flask) -> None:
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
        directory = current_app.config["DEMO_PKI_DIR"]
        if DemoPKI.exists(directory) and not force:
            if DemoPKI(directory).ensure_mobile_ca():
                click.echo(f"demo mobile-certificate CA added to {directory}")
            click.echo(f"demo PKI already in {directory}")
            return
        click.echo("creating the demo PKI (root, issuing CA, 5 cards)…")
        pki_ = DemoPKI.create(directory, base_url or current_app.config["PUBLIC_URL"])
        for card in pki_.cards:
            click.echo(f"  {card.card_number}  {card.name}  {card.national_id}  {card.status}")
        click.echo(f"demo PKI written to {directory} (PIN {pki_.cards[0].pin} for every card)")
