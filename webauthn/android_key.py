"""The ``android-key`` attestation statement format (WebAuthn §8.4), which python-fido2 does not verify.

``Attestation.for_type("android-key")`` is fido2's ``UnsupportedType``; this class fills the gap with
the same interface (``verify(statement, auth_data, client_data_hash) -> AttestationResult``). Being a
subclass of fido2's ``Attestation`` with ``FORMAT = "android-key"``, it is also found by fido2's own
lookups once this module is imported.

Android's key attestation extension (OID 1.3.6.1.4.1.11129.2.1.17) is parsed with asn1crypto using
only the part of the schema we read::

    KeyDescription ::= SEQUENCE {
        attestationVersion         INTEGER,
        attestationSecurityLevel   SecurityLevel,        -- ENUMERATED
        keyMintVersion             INTEGER,               -- keymasterVersion before KeyMint
        keyMintSecurityLevel       SecurityLevel,
        attestationChallenge       OCTET STRING,
        uniqueId                   OCTET STRING,
        softwareEnforced           AuthorizationList,
        hardwareEnforced           AuthorizationList }    -- "teeEnforced" in WebAuthn

    AuthorizationList ::= SEQUENCE {                      -- every field [n] EXPLICIT ... OPTIONAL
        purpose          [1]   EXPLICIT SET OF INTEGER,
        allApplications  [600] EXPLICIT NULL,
        origin           [702] EXPLICIT INTEGER,
        ... }                                             -- many more, ignored

An ``AuthorizationList`` is read as a sequence of arbitrary tagged values, so the dozens of fields that
new KeyMint versions add (and that we do not need) never break parsing.
"""

from __future__ import annotations

from asn1crypto import core
from asn1crypto import parser as asn1_parser
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.constant_time import bytes_eq
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fido2 import cbor
from fido2.attestation import Attestation, AttestationResult, AttestationType, InvalidData, InvalidSignature
from fido2.attestation.base import catch_builtins
from fido2.cose import CoseKey

from .errors import WebAuthnError
from .keys import public_key_from_cose

OID_KEY_DESCRIPTION = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.17")

KM_TAG_PURPOSE = 1
KM_TAG_ALL_APPLICATIONS = 600
KM_TAG_ORIGIN = 702
KM_ORIGIN_GENERATED = 0
KM_PURPOSE_SIGN = 2

_CONTEXT = 2  # ASN.1 class "context-specific"


class SecurityLevel(core.Enumerated):
    _map = {0: "software", 1: "trusted_environment", 2: "strongbox"}


class _IntegerSet(core.SetOf):
    _child_spec = core.Integer


class AuthorizationList(core.Asn1Value):
    """A SEQUENCE of ``[n] EXPLICIT`` values, kept as raw contents and read with :func:`authorizations`."""

    class_ = 0  # universal
    method = 1  # constructed
    tag = 16  # SEQUENCE


class KeyDescription(core.Sequence):
    _fields = [
        ("attestation_version", core.Integer),
        ("attestation_security_level", SecurityLevel),
        ("keymint_version", core.Integer),
        ("keymint_security_level", SecurityLevel),
        ("attestation_challenge", core.OctetString),
        ("unique_id", core.OctetString),
        ("software_enforced", AuthorizationList),
        ("hardware_enforced", AuthorizationList),
    ]


def authorizations(authorization_list: AuthorizationList) -> dict[int, bytes]:
    """Map each context tag number of an AuthorizationList to the DER of its (explicitly tagged) value."""
    out: dict[int, bytes] = {}
    data = authorization_list.contents or b""
    while data:
        length = asn1_parser.peek(data)
        class_, _method, tag, _header, contents, _trailer = asn1_parser.parse(data[:length], strict=True)
        data = data[length:]
        if class_ != _CONTEXT:
            raise ValueError("AuthorizationList entry is not context-tagged")
        if tag in out:
            raise ValueError(f"AuthorizationList tag {tag} repeated")
        out[tag] = contents
    return out


def parse_key_description(der: bytes) -> tuple[bytes, dict[int, bytes], dict[int, bytes]]:
    """Return (attestationChallenge, softwareEnforced, hardwareEnforced) of a KeyDescription's DER."""
    description = KeyDescription.load(der, strict=True)
    challenge = description["attestation_challenge"].native
    return (
        challenge,
        authorizations(description["software_enforced"]),
        authorizations(description["hardware_enforced"]),
    )


def _purposes(entries: dict[int, bytes]) -> set[int]:
    if KM_TAG_PURPOSE not in entries:
        return set()
    return set(_IntegerSet.load(entries[KM_TAG_PURPOSE], strict=True).native)


def _origin(entries: dict[int, bytes]) -> int | None:
    if KM_TAG_ORIGIN not in entries:
        return None
    return core.Integer.load(entries[KM_TAG_ORIGIN], strict=True).native


def _spki(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class AndroidKeyAttestation(Attestation):
    """Verifies ``android-key`` statements as WebAuthn §8.4.2 says.

    1. ``sig`` verifies over authenticatorData || clientDataHash with the key of ``x5c[0]`` and ``alg``;
    2. the credential public key equals the key of ``x5c[0]``;
    3. the KeyDescription's attestationChallenge equals clientDataHash;
    4. neither authorization list has allApplications;
    5. origin is KM_ORIGIN_GENERATED and purpose contains KM_PURPOSE_SIGN, taken from the hardware
       (TEE/StrongBox) list only when ``require_hardware`` is set, otherwise from the union of both lists.

    Returns ``AttestationResult(BASIC, x5c)``; the chain and its validity are checked by the caller.
    Raises fido2's ``InvalidData`` / ``InvalidSignature``.
    """

    FORMAT = "android-key"

    def __init__(self, require_hardware: bool = False) -> None:
        self.require_hardware = require_hardware

    @catch_builtins
    def verify(self, statement, auth_data, client_data_hash):
        alg, signature, x5c = statement["alg"], statement["sig"], statement["x5c"]
        if not (isinstance(alg, int) and isinstance(signature, bytes) and isinstance(x5c, list) and x5c):
            raise InvalidData("android-key statement needs alg, sig and x5c")
        if not all(isinstance(c, bytes) for c in x5c):
            raise InvalidData("x5c entries must be byte strings")
        credential_data = auth_data.credential_data
        if credential_data is None:
            raise InvalidData("no attested credential data")
        certificate = x509.load_der_x509_certificate(x5c[0])

        try:
            key = CoseKey.for_alg(alg).from_cryptography_key(certificate.public_key())
            key.verify(bytes(auth_data) + client_data_hash, signature)
        except _CryptoInvalidSignature:
            raise InvalidSignature("android-key signature does not verify") from None
        except (NotImplementedError, TypeError, AttributeError) as exc:
            raise InvalidData(f"android-key alg {alg} does not fit the certificate key: {exc!r}") from None

        try:
            credential_key = public_key_from_cose(cbor.encode(credential_data.public_key))
        except WebAuthnError as exc:
            raise InvalidData(f"credential public key: {exc}") from None
        if _spki(credential_key) != _spki(certificate.public_key()):
            raise InvalidData("credential public key differs from the attestation certificate's")

        try:
            extension = certificate.extensions.get_extension_for_oid(OID_KEY_DESCRIPTION)
        except x509.ExtensionNotFound:
            raise InvalidData("attestation certificate has no key description extension") from None
        challenge, software, hardware = parse_key_description(extension.value.value)
        if not bytes_eq(challenge, client_data_hash):
            raise InvalidData("attestationChallenge is not the client data hash")
        if KM_TAG_ALL_APPLICATIONS in software or KM_TAG_ALL_APPLICATIONS in hardware:
            raise InvalidData("key is usable by all applications, not scoped to the RP")

        if self.require_hardware:
            origins = {_origin(hardware)}
            purposes = _purposes(hardware)
        else:
            origins = {_origin(hardware), _origin(software)} - {None}
            purposes = _purposes(hardware) | _purposes(software)
        if origins != {KM_ORIGIN_GENERATED}:
            raise InvalidData(f"key origin {sorted(o for o in origins if o is not None)} is not generated")
        if KM_PURPOSE_SIGN not in purposes:
            raise InvalidData(f"key purposes {sorted(purposes)} do not include sign")
        return AttestationResult(AttestationType.BASIC, list(x5c))
