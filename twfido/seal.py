"""``python -m twfido.seal``: an sp_checksum for a call made by hand (curl), or the check of an idp_checksum.

    python -m twfido.seal --key API_KEY FIELD...                  # prints the checksum of FIELD… in order
    python -m twfido.seal --key API_KEY --check CHECKSUM FIELD... # exit 0 if CHECKSUM seals FIELD…, else 1

Give the fields in the operation's order (the README's table), an absent one as "". ``openssl enc`` cannot
do AES-GCM, so a shell has no other way to make one; the key may be ``@path`` to keep it out of the
shell's history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checksum import ChecksumError, InvalidAgencyKey, agency_key, seal, verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twfido.seal", description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True, help="the agency's API key, base64 (or @file)")
    parser.add_argument("--check", metavar="CHECKSUM", help="check this checksum instead of making one")
    parser.add_argument("fields", nargs="*", metavar="FIELD", help="the operation's fields, in its order")
    args = parser.parse_args(argv)
    encoded = Path(args.key[1:]).read_text().strip() if args.key.startswith("@") else args.key
    try:
        key = agency_key(encoded)
    except InvalidAgencyKey as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check is None:
        print(seal(key, args.fields))
        return 0
    try:
        verify(key, args.fields, args.check)
    except ChecksumError as exc:
        print(f"does not hold: {exc}", file=sys.stderr)
        return 1
    print("holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
