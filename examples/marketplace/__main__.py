"""``python -m examples.marketplace`` serves the marketplace on http://localhost:5001;
``python -m examples.marketplace register`` registers it at MoCert (once)."""

from __future__ import annotations

import argparse
import sys

from .app import ROOT, ConfigurationError, create_app, load_config, port_from
from .registration import CLIENT_ID, RegistrationError, mocert_cli, register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.marketplace", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    reg = commands.add_parser("register", help="register the demo client at MoCert unless it exists")
    reg.add_argument("--client-id", default=CLIENT_ID)
    reg.add_argument("--mocert-dir", default=str(ROOT), help="where MoCert's wsgi.py is (the repository)")
    args = parser.parse_args(argv)

    config = load_config()
    if args.command == "register":
        try:
            print(register(mocert_cli(args.mocert_dir), public_url=config["PUBLIC_URL"],
                           client_file=config["CLIENT_FILE"], client_id=args.client_id))
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
