"""``python -m webauthn.phone``: bind this computer as a phone, approve logins, list the credentials held.

    python -m webauthn.phone bind  URL_OR_QR_PNG [--name "My phone"] [--key-file PATH]
    python -m webauthn.phone login URL_OR_QR_PNG [--yes] [--key-file PATH]
    python -m webauthn.phone list  [--key-file PATH]

The key file defaults to $MOCERT_PHONE_KEY_FILE, else ~/.mocert-phone.json. Results are JSON on stdout;
what the phone would show its user goes to stderr. Exit status: 0 done, 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from .authenticator import SoftwareAuthenticator
from .browser import PhoneBrowser
from .client import DEFAULT_TIMEOUT, PhoneClient
from .errors import PhoneError, ServerError
from .qr import read_qr

DEFAULT_KEY_FILE = "~/.mocert-phone.json"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except ServerError as exc:
        detail = ", ".join(part for part in (exc.code, f"HTTP {exc.status}" if exc.status else "") if part)
        print(f"error: {exc.message}" + (f" ({detail})" if detail else ""), file=sys.stderr)
    except PhoneError as exc:
        name = getattr(exc, "name", None)
        print(f"error: {exc}" + (f" ({name})" if name else ""), file=sys.stderr)
    return 1


def _bind(args) -> int:
    client = _client(args)
    offer = client.binding_offer(_url(args.link))
    account = offer.account
    _say(
        f"Binding this phone to {account.get('name_masked', '?')} ({account.get('national_id_masked', '?')}) "
        f"at {offer.site}, as {args.name!r}"
    )
    device = client.bind(offer, args.name)
    _print_json(device)
    return 0


def _login(args) -> int:
    client = _client(args)
    request = client.login_request(_url(args.link))
    _say(f"Login request from {request.client_name} (via {request.site or request.link.base_url})")
    _say(f"Match code: {request.match_code}  (it must be the one the computer shows)")
    if not (args.yes or _ask_approval()):
        _say("Not approved; the login was left unanswered.")
        return 1
    _print_json(client.approve(request))
    return 0


def _list(args) -> int:
    authenticator = SoftwareAuthenticator(_key_file(args))
    _print_json([credential.to_json() for credential in authenticator.credentials()])
    return 0


def _client(args) -> PhoneClient:
    return PhoneClient(PhoneBrowser(SoftwareAuthenticator(_key_file(args))), timeout=args.timeout)


def _key_file(args) -> Path:
    return Path(args.key_file or os.environ.get("MOCERT_PHONE_KEY_FILE") or DEFAULT_KEY_FILE).expanduser()


def _url(link: str) -> str:
    """The URL itself, or the URL in the QR code of the image file ``link``."""
    if "://" in link:
        return link
    path = Path(link).expanduser()
    if not path.is_file():
        raise PhoneError(f"{link} is neither a URL nor a QR image file")
    url = read_qr(path)
    _say(f"QR code: {url}")
    return url


def _ask_approval() -> bool:
    sys.stderr.write("approve? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--key-file", help=f"the phone's credentials (default: $MOCERT_PHONE_KEY_FILE or {DEFAULT_KEY_FILE})"
    )
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per HTTP request")

    parser = argparse.ArgumentParser(
        prog="python -m webauthn.phone",
        description="MoCert's software phone: a WebAuthn platform authenticator with biometrics, in a key file.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    bind = commands.add_parser("bind", parents=[common], help="bind this phone from a binding URL or its QR image")
    bind.add_argument("link", metavar="URL_OR_QR_PNG", help="…/m/bind/<token>, or a PNG of its QR code")
    bind.add_argument("--name", default=_default_device_name(), help="the device name the server shows")
    bind.set_defaults(command=_bind)

    login = commands.add_parser("login", parents=[common], help="approve a login from its URL or QR image")
    login.add_argument("link", metavar="URL_OR_QR_PNG", help="…/m/login/<token>, or a PNG of its QR code")
    login.add_argument("--yes", action="store_true", help="approve without asking")
    login.set_defaults(command=_login)

    listing = commands.add_parser("list", parents=[common], help="the credentials this phone holds (JSON)")
    listing.set_defaults(command=_list)
    return parser


def _default_device_name() -> str:
    return f"Software phone on {socket.gethostname()}"[:64]


if __name__ == "__main__":
    sys.exit(main())
