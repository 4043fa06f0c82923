"""``python -m twfido.verify``: check a phone's signed_response offline, as an agency (or anyone) would.

    python -m twfido.verify --ca mobile-ca.pem --cert CERT_BASE64 SIGNED_RESPONSE [--rp-id HOST]
        [--expect-input FILE]

Prints what was approved as JSON and exits 0, or says which check failed and exits 1. ``CERT_BASE64``,
``SIGNED_RESPONSE`` and ``FILE`` may be given as ``@path`` to read them from a file.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path

from cryptography import x509

from .signed_response import SignedResponseError, verify


def _text(value: str) -> str:
    return Path(value[1:]).read_text(encoding="utf-8").strip() if value.startswith("@") else value


def _certificate(path: str) -> x509.Certificate:
    data = Path(path).read_bytes()
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twfido.verify", description=__doc__.splitlines()[0])
    parser.add_argument("signed_response", help="the answer's signed_response (or @file)")
    parser.add_argument("--cert", required=True, help="the answer's cert: base64 DER (or @file)")
    parser.add_argument("--ca", required=True, help="the mobile CA's certificate (PEM or DER file)")
    parser.add_argument("--rp-id", help="the WebAuthn relying-party id the phone must have signed for")
    parser.add_argument("--expect-input", help="the challenge_input rebuilt from the request (@file or text)")
    args = parser.parse_args(argv)
    try:
        ca = _certificate(args.ca)
        certificate_der = base64.b64decode(_text(args.cert), validate=True)
    except (OSError, ValueError, binascii.Error) as exc:
        print(f"cannot read the inputs: {exc}", file=sys.stderr)
        return 2
    expected = _text(args.expect_input) if args.expect_input else None
    try:
        approval = verify(_text(args.signed_response), certificate_der, ca=ca, expected_input=expected,
                          rp_id=args.rp_id)
    except SignedResponseError as exc:
        print(f"not verified: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({
        "verified": True,
        "subject": approval.certificate.subject.rfc4514_string(),
        "certificate_serial": f"{approval.certificate.serial_number:x}",
        "challenge_input": json.loads(approval.challenge_input),
        "sign_count": approval.sign_count,
    }, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
