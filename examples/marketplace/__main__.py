"""``python -m examples.marketplace`` serves the marketplace on http://localhost:5001;
``python -m examples.marketplace register`` registers it at MoCert (once): as an OpenID Connect client and as
an agency of the TW FidO API (for the login with 行動自然人憑證)."""

from __future__ import annotations

import argparse
import sys

from .app import ROOT, ConfigurationError, create_app, load_config, port_from
from .registration import CLIENT_ID, RegistrationError, mocert_cli, register, register_agency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.marketplace", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    reg = commands.add_parser("register", help="register the demo client and agency at MoCert unless they exist")
    reg.add_argument("--client-id", default=CLIENT_ID)
    reg.add_argument("--mocert-dir", default=str(ROOT), help="where MoCert's wsgi.py is (the repository)")
    args = parser.parse_args(argv)

    config = load_config()
    if args.command == "register":
        run = mocert_cli(args.mocert_dir)
        try:
            print(register(run, public_url=config["PUBLIC_URL"], client_file=config["CLIENT_FILE"],
                           client_id=args.client_id))
            print(register_agency(run, public_url=config["PUBLIC_URL"], agency_file=config["AGENCY_FILE"]))
        except RegistrationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        app = create_app()
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app.run(host="localhost", port=port_from())
    return 0


if __name__ == "__main__":
    sys.exit(main())
