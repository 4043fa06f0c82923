"""``python -m iccard.agent``: serve the local card component on http://localhost:61161.

``--emulate`` serves the demo cards (no reader, no PC/SC needed); ``--pkcs11 MODULE`` reads cards through a
PKCS#11 module (the card vendor's: HiCOS for MOICA's citizen cards; OpenSC's ``opensc-pkcs11.so`` for PIV
cards; SoftHSM); otherwise cards are read as PIV cards in PC/SC readers. Both need the ``agent`` extra
(pyscard, python-pkcs11).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from ..cards import PivSlot
from ..errors import CardError
from .component import LocalComponent
from .server import AgentServer
from .trust import TrustList

DEFAULT_PORT = 61161


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iccard.agent", description=__doc__.splitlines()[0])
    parser.add_argument("--emulate", action="store_true", help="serve the demo cards instead of PC/SC readers")
    parser.add_argument("--pkcs11", type=Path, metavar="MODULE",
                        help="read cards through this PKCS#11 module: the card vendor's (MOICA cards: the HiCOS "
                             "module MOICA's component installs), OpenSC's opensc-pkcs11.so, SoftHSM's libsofthsm2.so")
    parser.add_argument("--pki-dir", type=Path, default=Path("instance/demo-pki"), help="the demo PKI (--emulate)")
    parser.add_argument("--state-dir", type=Path, default=Path("instance/agent"),
                        help="where the trusted sites (and emulated PIN counters) are kept")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (keep it on this computer)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--trust", action="append", default=[], metavar="SITE",
                        help="trust this site (e.g. http://localhost:5000) without asking; repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(message)s")

    if args.emulate and args.pkcs11:
        parser.error("--emulate and --pkcs11 exclude each other")
    if args.pkcs11:
        try:
            from ..pkcs11 import Pkcs11Module
        except ImportError as exc:
            print(f"cannot read cards through PKCS#11: {exc}", file=sys.stderr)
            return 2
        try:
            slots = Pkcs11Module(args.pkcs11)
        except CardError as exc:
            print(exc, file=sys.stderr)
            return 2
        source = f"PKCS#11 module {args.pkcs11}: {slots.description}"
    elif args.emulate:
        from .emulated import emulated_readers

        readers = emulated_readers(args.pki_dir, args.state_dir / "cards")
        source = f"{len(readers())} emulated demo cards from {args.pki_dir}"
        slots = lambda: [PivSlot(reader) for reader in readers()]  # noqa: E731
    else:
        try:
            from ..pcsc import list_readers
        except ImportError as exc:
            print(f"cannot read cards through PC/SC: {exc}", file=sys.stderr)
            return 2
        slots = lambda: [PivSlot(reader) for reader in list_readers()]  # noqa: E731
        source = "PC/SC readers"

    component = LocalComponent(slots, TrustList(args.state_dir / "trusted-sites.json", tuple(args.trust)))
    try:
        code = _serve(args, component, source)
    finally:
        if args.pkcs11:  # also when the agent could not listen
            slots.close()  # C_Finalize: the vendor's module lets go of the card and the reader
    if code == 0:
        print("MoCert card agent stopped" + (", PKCS#11 module closed" if args.pkcs11 else ""), flush=True)
    return code


def _serve(args: argparse.Namespace, component: LocalComponent, source: str) -> int:
    try:
        server = AgentServer((args.host, args.port), component)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc} (is another card component running?)", file=sys.stderr)
        return 1
    sites = ", ".join(component.trust.sites()) or "none yet"
    print(f"MoCert card agent on {server.url} ({source}); trusted sites: {sites}", flush=True)
    # SIGTERM (a service manager, a logout, kill) ends serve_forever as Ctrl-C does, so that the module is
    # finalized rather than the process killed with the card's reader held.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
