"""``python -m webauthn.phone``: bind this computer as a phone, approve logins and agencies' requests, list the
credentials held.

    python -m webauthn.phone bind  URL_OR_QR_PNG [--name "My phone"] [--key-file PATH]
    python -m webauthn.phone login URL_OR_QR_PNG [--yes] [--key-file PATH]
    python -m webauthn.phone sp    SP_TICKET_OR_LINK_OR_QR_PNG [--server URL] [--yes | --decline] [--key-file PATH]
    python -m webauthn.phone list  [--key-file PATH]

``sp`` answers an agency's request (TW FidO): its ``sp_ticket`` (as a QR code shows it, or pushed), or the
MWEB2APP link ``<public URL>/m/sp?sp_ticket=…&rtn_url=…&rtn_val=…``. The server asked is --server, else
$MOCERT_SERVER, else the link's. The key file defaults to $MOCERT_PHONE_KEY_FILE, else ~/.mocert-phone.json.
Results are JSON on stdout; what the phone would show its user goes to stderr. Exit status: 0 done (approved,
or declined with --decline), 1 refused, failed or not approved, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import unicodedata
from pathlib import Path

from .authenticator import SoftwareAuthenticator
from .browser import PhoneBrowser
from .client import DEFAULT_TIMEOUT, PhoneClient, SpRequest, SpTicket
from .errors import PhoneError, ServerError
from .qr import read_qr

DEFAULT_KEY_FILE = "~/.mocert-phone.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


class UsageError(Exception):
    """Bad usage that only the command itself can tell (exit status 2, as argparse's own)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except UsageError as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return 2
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


def _sp(args) -> int:
    ticket = SpTicket.parse(_ticket_text(args.ticket))
    server = args.server or os.environ.get("MOCERT_SERVER") or None
    if server is None and ticket.base_url is None:
        raise UsageError("a bare sp_ticket does not say which server it is for: give --server URL or set MOCERT_SERVER")
    client = _client(args)
    request = client.sp_request(server, ticket)
    _show(request)
    if args.decline:
        answer = client.decline_sp(request)
    elif args.yes or _ask_approval():
        answer = client.approve_sp(request)
    else:
        _say("Not approved; the request was left unanswered (--decline tells the agency no).")
        return 1
    _print_json(answer)
    if ticket.return_url is not None:
        _say(f"Back to the agency: {_shown(ticket.return_url)}  (rtn_val: {_shown(ticket.return_value or '')})")
    return 0


def _show(request: SpRequest) -> None:
    """What the phone shows before asking: who asks, in which words, and what exactly is signed."""
    _say(f"Request from {_shown(request.sp_name)} (via {request.base_url})")
    _say(f"Hint: {_shown(request.hint)}")
    if request.op_code == "ATH":
        _say("To log in (ATH)")
    elif request.op_code == "SIGN":
        _say(f"To sign (SIGN): {_shown(request.sign_data)}")
    else:
        _say(f"To sign {len(request.sign_data_set)} texts (BATSIGN):")
        for number, item in enumerate(request.sign_data_set, 1):
            _say(f"  {number}. {_shown(item)}")
    _say(f"Expires at {request.expires_at.isoformat(timespec='seconds')}")


def _shown(text: str) -> str:
    """``text`` on one line with nothing hidden: control and format characters (newlines, terminal escapes,
    bidirectional overrides, zero-width ones) written as escapes, so that what is signed is what is read."""
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char).startswith("C") or unicodedata.category(char) in ("Zl", "Zp")
        else char
        for char in text
    )


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
    if not _is_file(link):
        raise PhoneError(f"{link} is neither a URL nor a QR image file")
    return _qr_text(link)


def _ticket_text(text: str) -> str:
    """The ticket or link itself, or the text of the QR code in the image file ``text``."""
    if "://" in text:
        return text
    if _is_file(text):
        return _qr_text(text)
    if os.sep in text or text.lower().endswith(IMAGE_SUFFIXES):  # a ticket has neither
        raise PhoneError(f"{text}: no such QR image file")
    return text


def _is_file(name: str) -> bool:
    # os.path.isfile, not Path.is_file: a ticket or URL is often too long a file name, which Path.is_file raises on.
    return os.path.isfile(os.path.expanduser(name))


def _qr_text(name: str) -> str:
    text = read_qr(Path(name).expanduser())
    _say(f"QR code: {text}")
    return text


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

    sp = commands.add_parser(
        "sp", parents=[common], help="approve or decline an agency's request: its sp_ticket, link or QR image"
    )
    sp.add_argument(
        "ticket",
        metavar="SP_TICKET_OR_LINK_OR_QR_PNG",
        help="the sp_ticket, the link …/m/sp?sp_ticket=…&rtn_url=…&rtn_val=…, or a PNG of the ticket's QR code",
    )
    sp.add_argument(
        "--server", metavar="URL", help="the server's public URL (default: $MOCERT_SERVER, else the link's)"
    )
    answer = sp.add_mutually_exclusive_group()
    answer.add_argument("--yes", action="store_true", help="approve without asking")
    answer.add_argument("--decline", action="store_true", help="decline without asking")
    sp.set_defaults(command=_sp)

    listing = commands.add_parser("list", parents=[common], help="the credentials this phone holds (JSON)")
    listing.set_defaults(command=_list)
    return parser


def _default_device_name() -> str:
    return f"Software phone on {socket.gethostname()}"[:64]


if __name__ == "__main__":
    sys.exit(main())
