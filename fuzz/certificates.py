"""Card certificates no real card has: each a demo card's certificate bent in one place (re-encoded with
asn1crypto, so the DER is well-formed where it is not meant to be broken)."""

from __future__ import annotations

import random

from asn1crypto import core, x509


def bent_certificates(der: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []

    def edit(change) -> None:
        cert = x509.Certificate.load(der)
        change(cert)
        out.append(cert.dump(force=True))

    def unknown_key_algorithm(cert):
        cert["tbs_certificate"]["subject_public_key_info"]["algorithm"]["algorithm"] = "1.2.3.4.5.6.7"

    def ed25519_key(cert):
        cert["tbs_certificate"]["subject_public_key_info"] = x509.PublicKeyInfo({
            "algorithm": {"algorithm": "ed25519"}, "public_key": b"\x01" * 32})

    def duplicated_extension(cert):
        extensions = cert["tbs_certificate"]["extensions"]
        extensions.append(extensions[0].copy())

    def truncated_extension(cert):
        extensions = cert["tbs_certificate"]["extensions"]
        for ext in extensions:
            value = ext["extn_value"].contents
            ext["extn_value"] = core.ParsableOctetString(value[: max(1, len(value) // 2)])
            break

    def garbage_extension(cert):
        extensions = cert["tbs_certificate"]["extensions"]
        extensions.append(x509.Extension({"extn_id": "1.3.6.1.4.1.99999.1", "critical": True,
                                          "extn_value": core.ParsableOctetString(b"\x30\x80\x00")}))

    def no_extensions(cert):
        cert["tbs_certificate"]["extensions"] = x509.Extensions([])

    def huge_serial(cert):
        cert["tbs_certificate"]["serial_number"] = 2 ** 1000

    def negative_serial(cert):
        cert["tbs_certificate"]["serial_number"] = -1

    for change in (unknown_key_algorithm, ed25519_key, duplicated_extension, truncated_extension, garbage_extension,
                   no_extensions, huge_serial, negative_serial):
        try:
            edit(change)
        except (ValueError, TypeError, KeyError):
            continue
    out += [der[: len(der) // 2], der[:-1], der + b"\x00", b"", b"\x30\x00", b"\x30\x82\xff\xff" + der[4:]]
    for _ in range(6):  # a few bytes flipped anywhere
        flipped = bytearray(der)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
    return out
