"""``python -m twfido.verify``: check a phone's signed_response offline, as an agency (or anyone) would.

    python -m twfido.verify --ca mobile-ca.pem --cert CERT_BASE64 SIGNED_RESPONSE [--rp-id HOST]
        [--expect-input FILE] [--crl FILE | --ocsp-response FILE | --no-revocation-check]

The certificate's status is fetched from the OCSP responder it names (asked with a nonce, which the answer
must echo), then its CRL (dated at most an hour before: a CRL carries no nonce), unless a CRL (DER or PEM) or
an OCSP answer (DER) downloaded earlier is given: then nothing is fetched, and the status is as of the
thisUpdate of what was given, which is printed (stderr, "note:"). ``--no-revocation-check`` skips it, and
says so. Prints what was approved as JSON and exits 0; or says which check failed and exits 1 (a
revoked certificate too), 3 when the status could not be learnt (try again, or give a current CRL), 2 for
inputs that cannot be read. ``CERT_BASE64``, ``SIGNED_RESPONSE`` and ``FILE`` may be given as ``@path`` to
read them from a file.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path

from cryptography import x509

from .revocation import CertificateRevoked, RevocationUnknown, Sources
from .signed_response import SignedResponseError, verify

NOT_VERIFIED, UNREADABLE, STATUS_UNKNOWN = 1, 2, 3


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
    status = parser.add_mutually_exclusive_group()
    status.add_argument("--crl", help="the mobile CA's CRL, downloaded (DER or PEM file): nothing is fetched; "
                        "the status is as of its thisUpdate")
    status.add_argument("--ocsp-response", help="an OCSP answer about the certificate (DER file): nothing is "
                        "fetched; the status is as of its thisUpdate (no nonce of ours can show it newer)")
    status.add_argument("--no-revocation-check", action="store_true",
                        help="do not check whether the certificate is revoked (said on stderr)")
    args = parser.parse_args(argv)
    try:
        ca = _certificate(args.ca)
        certificate_der = base64.b64decode(_text(args.cert), validate=True)
        if args.no_revocation_check:
            revocation = None
        elif args.crl or args.ocsp_response:
            revocation = Sources(
                crl=Path(args.crl).read_bytes() if args.crl else None,
                ocsp_response=Path(args.ocsp_response).read_bytes() if args.ocsp_response else None,
                fetch=None,
            )
        else:
            revocation = Sources()
    except (OSError, ValueError, binascii.Error) as exc:
        print(f"cannot read the inputs: {exc}", file=sys.stderr)
        return UNREADABLE
    expected = _text(args.expect_input) if args.expect_input else None
    try:
        approval = verify(_text(args.signed_response), certificate_der, ca=ca, expected_input=expected,
                          rp_id=args.rp_id, revocation=revocation)
    except (SignedResponseError, CertificateRevoked) as exc:
        print(f"not verified: {exc}", file=sys.stderr)
        return NOT_VERIFIED
    except RevocationUnknown as exc:
        print(f"not verified: the certificate's status is unknown: {exc}", file=sys.stderr)
        return STATUS_UNKNOWN
    if approval.revocation is None:
        print("warning: revocation not checked (--no-revocation-check): the certificate may be revoked",
              file=sys.stderr)
    elif approval.revocation.caveat is not None:  # not an answer made for this check: as old as its thisUpdate
        print(f"note: {approval.revocation.caveat}", file=sys.stderr)
    print(json.dumps({
        "verified": True,
        "subject": approval.certificate.subject.rfc4514_string(),
        "certificate_serial": f"{approval.certificate.serial_number:x}",
        "challenge_input": json.loads(approval.challenge_input),
        "sign_count": approval.sign_count,
        "revocation": {"status": "not checked"} if approval.revocation is None else {
            "status": "good",
            "source": approval.revocation.source,
            "this_update": approval.revocation.this_update.isoformat(),
            "next_update": approval.revocation.next_update.isoformat(),
            "caveat": approval.revocation.caveat,
        },
    }, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
