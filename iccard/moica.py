"""What is known of the real certification authorities of the citizen card: GRCA (the government root) and
MOICA (the issuing CA), by generation: their names, their key identifiers, their policy.

Every MOICA generation has one name, and anyone can write a name into a certificate: a key identifier is
what tells a real CA from another. The G3 certificates themselves are shipped in ``iccard/trust/``.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from .certificate import key_identifier

POLICY_OID = "2.16.886.101.0.3.3"  # MOICA's certificate policy for citizen certificates

MOICA_NAME = x509.Name(  # the same for every generation: only the key identifier tells them apart
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "行政院"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "內政部憑證管理中心"),
    ]
)
GRCA_NAMES = {
    "G3": x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "行政院"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Government Root Certification Authority - G3"),
        ]
    ),
    # GRCA G2 does not follow the G3 pattern: its name is GRCA G1's, without a CN (as in the real GRCA2.cer).
    "G2": x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Government Root Certification Authority"),
        ]
    ),
}
# Subject key identifiers as the CAs publish them (and as the shipped G3 certificates carry them).
KEY_IDENTIFIERS = {
    ("GRCA", "G2"): bytes.fromhex("D5671DE09C7A2C9CCBC598E71D07262A86EC74CD"),
    ("GRCA", "G3"): bytes.fromhex("3A908EE741471973DC9CBDA37ED83D3E83091F03"),
    ("MOICA", "G2"): bytes.fromhex("FA9B3467090A9822F762488B8226A645C5C322A4"),
    ("MOICA", "G3"): bytes.fromhex("4720A3B1264BCD6D48ACF2640886972C7454115F"),
}
# A certificate with one of these names and a key identifier not listed for it is not the real CA: the
# MOICA-profile demo PKI (iccard.demo_pki), or a forgery. GRCA G1 shares G2's name; it expired with the
# last G1 cards, and is not listed.
REAL_KEYS_BY_NAME = {
    MOICA_NAME: frozenset({KEY_IDENTIFIERS["MOICA", "G2"], KEY_IDENTIFIERS["MOICA", "G3"]}),
    GRCA_NAMES["G2"]: frozenset({KEY_IDENTIFIERS["GRCA", "G2"]}),
    GRCA_NAMES["G3"]: frozenset({KEY_IDENTIFIERS["GRCA", "G3"]}),
}


# The G3 identifiers are RFC 5280's method 1 over the CAs' keys (the shipped certificates show it): for them
# the key itself is checked, not only the identifier a certificate states, which can be copied as a name can.
# G2's certificates are not shipped, so for G2 the stated identifier is all there is to go by.
COMPUTED_FROM_THE_KEY = frozenset({KEY_IDENTIFIERS["GRCA", "G3"], KEY_IDENTIFIERS["MOICA", "G3"]})


def wears_a_real_name(certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` has the name of GRCA or MOICA but not the key of any of their generations."""
    real_keys = REAL_KEYS_BY_NAME.get(certificate.subject)
    if real_keys is None:
        return False
    stated = key_identifier(certificate)
    if stated not in real_keys:
        return True
    return stated in COMPUTED_FROM_THE_KEY and _computed_key_identifier(certificate) != stated


def _computed_key_identifier(certificate: x509.Certificate) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
