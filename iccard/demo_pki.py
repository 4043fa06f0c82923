"""The demo PKI: a GRCA-like root, a MOICA-like issuing CA, and citizen cards shaped like MOICA's.

Everything lives in one directory (``instance/demo-pki`` by default), keys included, and never in the
repository. The same directory answers revocation questions: :meth:`DemoPKI.crl` and
:meth:`DemoPKI.ocsp_response` are what the development server's demo CRL and OCSP endpoints serve; and
it plays MOICA's identity check (:meth:`DemoPKI.confirms_identity`, for callers holding
:func:`identity_check_token`), since it knows which demo card belongs to which national ID.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from . import ca_status, moica
from .certificate import subject_directory_attributes

# MOICA's certificate policy. The demo uses the real OID so that a deployment changes only its trust
# anchors, not its policy settings, when it moves from the demo to the real cards.
MOICA_POLICY_OID = moica.POLICY_OID
DEMO_PIN = "123456"
ROOT_NAME = "MoCert Demo GRCA"
ISSUER_NAME = "MoCert Demo MOICA"
MOBILE_CA_NAME = "MoCert Demo Mobile CA"
CRL_VALIDITY = timedelta(hours=36)  # what GRCA's CPS gives its CRLs
OCSP_VALIDITY = timedelta(hours=1)
IDENTITY_CHECK_TOKEN_FILE = "identity-check.token"


@dataclass(frozen=True)
class DemoCard:
    name: str
    national_id: str
    card_number: str  # 4 letters + 12 digits, as printed on real cards
    subject_serial: str  # 16 digits, the subject's serialNumber
    status: str  # valid | expired | revoked
    certificate_serial: int  # the signing certificate's
    pin: str = DEMO_PIN
    # The encryption certificate's serial. None only in a manifest from before cards had one, until the next
    # ``init-demo`` (:meth:`DemoPKI.ensure_card_encryption`) gives them theirs.
    encryption_serial: int | None = None
    generation: str | None = None  # "G2" or "G3" in the MOICA-profile PKI (:class:`MoicaProfilePKI`)


# The demo people of the README. 林志豪 has two cards: the expired one and its replacement.
DEMO_PEOPLE = (
    ("王小明", "A123456789", "TEST000000000001", "valid"),
    ("陳美玲", "B223456782", "TEST000000000002", "valid"),
    ("林志豪", "F131313136", "TEST000000000003", "expired"),
    ("林志豪", "F131313136", "TEST000000000004", "valid"),
    ("張家瑋", "K120000006", "TEST000000000005", "revoked"),
)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MoCert Demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def identity_check_token(directory: str | os.PathLike[str]) -> str:
    """The demo identity check's credential, made on first use and kept beside the demo keys.

    The development server reads it both as the client (its configuration) and as the demo service.
    """
    path = Path(directory) / IDENTITY_CHECK_TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class _CardStore:
    """The cards of a demo PKI in ``directory``: ``manifest.json`` lists them, ``cards/`` holds their files."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @classmethod
    def exists(cls, directory: str | os.PathLike[str]) -> bool:
        return (Path(directory) / "manifest.json").is_file()

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.directory / "manifest.json").read_text())

    @property
    def cards(self) -> list[DemoCard]:
        return [DemoCard(**card) for card in self.manifest["cards"]]

    def card(self, card_number: str) -> DemoCard:
        for card in self.cards:
            if card.card_number == card_number:
                return card
        raise KeyError(card_number)

    def card_certificate(self, card: DemoCard) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / "cards" / f"{card.card_number}.pem").read_bytes())

    def card_key(self, card: DemoCard) -> rsa.RSAPrivateKey:
        """The private key of the card's signing certificate."""
        return serialization.load_pem_private_key(
            (self.directory / "cards" / f"{card.card_number}.key.pem").read_bytes(), None
        )

    def _new_card(self, name: str, national_id: str, card_number: str, **extra) -> DemoCard:
        return DemoCard(
            name=name,
            national_id=national_id,
            card_number=card_number,
            subject_serial=f"{len(self.cards) + 1:016d}",
            status="valid",
            certificate_serial=x509.random_serial_number(),
            encryption_serial=x509.random_serial_number(),
            **extra,
        )

    def _issue(
        self, card: DemoCard, issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey, urls, now: datetime | None,
        *, signing: dict, encryption: dict,
    ) -> DemoCard:
        """Write ``card``'s signing and encryption certificates and keys (valid five years) and add it to the
        manifest; ``signing`` and ``encryption`` are each certificate's options."""
        now = now or datetime.now(timezone.utc)
        not_before, not_after = now - timedelta(minutes=1), now + timedelta(days=5 * 365)
        key = _new_key()
        cert = _citizen_certificate(card, key, issuer, issuer_key, not_before, not_after, urls, **signing)
        cards = self.directory / "cards"
        (cards / f"{card.card_number}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(cards / f"{card.card_number}.key.pem", _pem_key(key))
        _write_encryption_pair(cards, card, issuer, issuer_key, not_before, not_after, urls, **encryption)
        self._write_manifest({**self.manifest, "cards": [*self.manifest["cards"], asdict(card)]})
        return card

    def card_encryption_certificate(self, card: DemoCard) -> x509.Certificate:
        """The card's second certificate, for encryption (keyEncipherment + dataEncipherment), as real cards have."""
        return x509.load_pem_x509_certificate(
            (self.directory / "cards" / f"{card.card_number}.enc.pem").read_bytes()
        )

    def card_encryption_key(self, card: DemoCard) -> rsa.RSAPrivateKey:
        """The private key of the card's encryption certificate."""
        return serialization.load_pem_private_key(
            (self.directory / "cards" / f"{card.card_number}.enc.key.pem").read_bytes(), None
        )

    def _write_manifest(self, manifest: dict) -> None:
        (self.directory / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        self.__dict__.pop("manifest", None)  # re-read on next use

    # -- the identity check -----------------------------------------------------------------------

    def confirms_identity(self, certificate_der: bytes, national_id: str) -> bool:
        """Whether ``certificate_der`` is exactly one of the demo cards, and that card is ``national_id``'s."""
        for card in self.cards:
            if self.card_certificate(card).public_bytes(serialization.Encoding.DER) == certificate_der:
                return card.national_id == national_id
        return False

    @property
    def _revoked(self) -> dict[int, dict]:
        return {entry["serial"]: entry for entry in self.manifest["revoked"]}

    def _revocation(self, serial: int) -> ca_status.Revocation | None:
        entry = self._revoked.get(serial)
        if entry is None:
            return None
        revoked_at, reason = datetime.fromisoformat(entry["revoked_at"]), x509.ReasonFlags[entry["reason"]]
        return ca_status.Revocation(serial, revoked_at, reason)


class DemoPKI(_CardStore):
    """A demo PKI stored in ``directory``. Create it with :meth:`create`, open it with the constructor."""

    # -- creation ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike[str], base_url: str, now: datetime | None = None) -> DemoPKI:
        """Create the root, the issuing CA and the demo cards. ``base_url`` serves the CRL and OCSP."""
        now = now or datetime.now(timezone.utc)
        target = Path(directory)
        (target / "cards").mkdir(parents=True, exist_ok=True)
        base_url = base_url.rstrip("/")

        root_key, issuer_key = _new_key(), _new_key()
        root = (
            x509.CertificateBuilder()
            .subject_name(_name(ROOT_NAME))
            .issuer_name(_name(ROOT_NAME))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * 20))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        issuer = (
            x509.CertificateBuilder()
            .subject_name(_name(ISSUER_NAME))
            .issuer_name(root.subject)
            .public_key(issuer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * 10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(MOICA_POLICY_OID), None)]),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        (target / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
        (target / "issuer.pem").write_bytes(issuer.public_bytes(serialization.Encoding.PEM))
        _write_private(target / "root.key.pem", _pem_key(root_key))
        _write_private(target / "issuer.key.pem", _pem_key(issuer_key))

        cards, revoked = [], []
        for index, (name, national_id, card_number, status) in enumerate(DEMO_PEOPLE, start=1):
            key = _new_key()
            if status == "expired":
                not_before, not_after = now - timedelta(days=5 * 365 + 30), now - timedelta(days=30)
            else:
                not_before, not_after = now - timedelta(days=1), now + timedelta(days=5 * 365)
            card = DemoCard(
                name=name,
                national_id=national_id,
                card_number=card_number,
                subject_serial=f"{index:016d}",
                status=status,
                certificate_serial=x509.random_serial_number(),
                encryption_serial=x509.random_serial_number(),
            )
            cert = _citizen_certificate(card, key, issuer, issuer_key, not_before, not_after, _demo_urls(base_url))
            (target / "cards" / f"{card.card_number}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_private(target / "cards" / f"{card.card_number}.key.pem", _pem_key(key))
            _write_encryption_pair(
                target / "cards", card, issuer, issuer_key, not_before, not_after, _demo_urls(base_url)
            )
            cards.append(asdict(card))
            if status == "revoked":
                # A revoked card is revoked whole: both its certificates, as MOICA revokes them together.
                for serial in (card.certificate_serial, card.encryption_serial):
                    revoked.append({"serial": serial, "revoked_at": now.isoformat(), "reason": "key_compromise"})
        manifest = {"base_url": base_url, "created_at": now.isoformat(), "cards": cards, "revoked": revoked}
        (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        pki = cls(target)
        pki.ensure_mobile_ca(now)
        identity_check_token(target)
        return pki

    def ensure_card_encryption(self) -> list[str]:
        """Give each card that has none its encryption certificate and key; the card numbers given one.

        A demo PKI made before cards had encryption certificates gets them on the next ``init-demo``. Each
        gets the validity period of its card's signing certificate, so an expired card stays expired.
        """
        added, cards, revoked = [], [], list(self.manifest["revoked"])
        revoked_serials = {entry["serial"]: entry for entry in revoked}
        for card in self.cards:
            has_file = (self.directory / "cards" / f"{card.card_number}.enc.pem").is_file()
            if card.encryption_serial is None or not has_file:
                signing = self.card_certificate(card)
                card = replace(card, encryption_serial=card.encryption_serial or x509.random_serial_number())
                _write_encryption_pair(
                    self.directory / "cards", card, self.issuer_certificate, self._issuer_key,
                    signing.not_valid_before_utc, signing.not_valid_after_utc, _demo_urls(self.manifest["base_url"]),
                    id_last4=_has_extension(signing, ExtensionOID.SUBJECT_DIRECTORY_ATTRIBUTES),
                )
                entry = revoked_serials.get(card.certificate_serial)
                if entry is not None and card.encryption_serial not in revoked_serials:
                    revoked.append({**entry, "serial": card.encryption_serial})
                added.append(card.card_number)
            cards.append(asdict(card))
        if added:
            self._write_manifest({**self.manifest, "cards": cards, "revoked": revoked})
        return added

    def ensure_mobile_ca(self, now: datetime | None = None) -> bool:
        """Create the demo mobile-certificate CA under the demo root if it is missing; True if created.

        A demo PKI made before phones could be bound gets its mobile CA on the next ``init-demo``.
        """
        if (self.directory / "mobile-ca.pem").is_file():
            return False
        now = now or datetime.now(timezone.utc)
        root_key = serialization.load_pem_private_key((self.directory / "root.key.pem").read_bytes(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(MOBILE_CA_NAME))
            .issuer_name(self.root_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * 10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        _write_private(
            self.directory / "mobile-ca.key.pem",
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        (self.directory / "mobile-ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return True

    # -- reading ----------------------------------------------------------------------------------

    @cached_property
    def root_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / "root.pem").read_bytes())

    @cached_property
    def issuer_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / "issuer.pem").read_bytes())

    @cached_property
    def _issuer_key(self) -> rsa.RSAPrivateKey:
        return serialization.load_pem_private_key((self.directory / "issuer.key.pem").read_bytes(), None)

    def issue_card(
        self, name: str, national_id: str, card_number: str, now: datetime | None = None, *, id_last4: bool = True
    ) -> DemoCard:
        """A further valid card (a replacement, say) from the demo issuing CA, added to the manifest.

        ``id_last4=False`` leaves out the last four digits of the national ID, as some real certificates do.
        """
        return self._issue(
            self._new_card(name, national_id, card_number), self.issuer_certificate, self._issuer_key,
            _demo_urls(self.manifest["base_url"]), now, signing={"id_last4": id_last4}, encryption={"id_last4": id_last4},
        )

    # -- revocation -------------------------------------------------------------------------------

    def crl(self, now: datetime | None = None) -> bytes:
        """A freshly signed DER CRL of the issuing CA."""
        now = now or datetime.now(timezone.utc)
        revoked = [self._revocation(serial) for serial in self._revoked]
        return ca_status.sign_crl(
            self.issuer_certificate,
            self._issuer_key,
            revoked,
            number=int(now.timestamp()),
            this_update=now - timedelta(minutes=1),
            next_update=now + CRL_VALIDITY,
        )

    def ocsp_response(self, request_der: bytes, now: datetime | None = None) -> bytes:
        """Answer an OCSP request for one of this CA's certificates, signed by the CA itself."""
        now = now or datetime.now(timezone.utc)
        request = ca_status.load_ocsp_request(request_der)
        if request is None:
            return ca_status.malformed_request()
        issued = {serial for card in self.cards for serial in (card.certificate_serial, card.encryption_serial)}
        if request.serial_number not in issued or not ca_status.names_issuer(request, self.issuer_certificate):
            return ca_status.unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        revocation = self._revocation(request.serial_number)
        return ca_status.answer(
            request,
            self.issuer_certificate,
            self._issuer_key,
            status=ocsp.OCSPCertStatus.REVOKED if revocation else ocsp.OCSPCertStatus.GOOD,
            revocation=revocation,
            this_update=now - timedelta(minutes=1),
            next_update=now + OCSP_VALIDITY,
        )


# -- the real MOICA profile ---------------------------------------------------------------------------
#
# Certificates with the real CAs' subjects and extensions, on our own keys, so that tests cover exactly what a
# real card presents: GRCA G3 -> MOICA G3 (RSA-4096) and GRCA G2 -> MOICA G2 (RSA-2048 under an RSA-4096
# root), the two generations of citizen certificates in use. The G3 extension sets are copied from the real
# certificates shipped in iccard/trust/ (their order and criticality), the G2 ones from the real GRCA2.cer and
# MOICA2.cer as grca.nat.gov.tw and moica.nat.gov.tw publish them (MOICA G2's subject key identifier
# FA:9B:34:67:09:0A:98:22:F7:62:48:8B:82:26:A6:45:C5:C3:22:A4); only keys, key identifiers and the addresses
# differ: ours point at the demo's own base URL, never at the real hosts.

MOICA_PROFILE_DIR = "moica-profile"  # under the demo PKI's directory, where the development server serves it
MOICA_PROFILE_PATH = "/pki/demo/moica-profile"
# The real CAs' names (iccard.moica), worn by the MOICA-profile demo CAs on keys of their own.
MOICA_SUBJECT = moica.MOICA_NAME
GRCA_SUBJECTS = moica.GRCA_NAMES
GENERATIONS = ("G2", "G3")
_ROOT_KEY_BITS = {"G2": 4096, "G3": 4096}
_MOICA_KEY_BITS = {"G2": 2048, "G3": 4096}
# The demo people of the MOICA profile: one valid card of each generation.
MOICA_PROFILE_PEOPLE = (
    ("王小明", "A123456789", "MOIC000000000003", "G3"),
    ("陳美玲", "B223456782", "MOIC000000000002", "G2"),
)


def _key_usage(**set_bits: bool) -> x509.KeyUsage:
    bits = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
        False,
    )
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


def _grca_certificate(generation: str, key: rsa.RSAPrivateKey, now: datetime) -> x509.Certificate:
    # Both real roots: basicConstraints (critical), subjectKeyIdentifier, keyUsage (critical), in this order.
    usage = (
        _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True)
        if generation == "G3"
        else _key_usage(key_cert_sign=True, crl_sign=True)
    )
    subject = GRCA_SUBJECTS[generation]
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 25))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def _moica_certificate(
    generation: str, key: rsa.RSAPrivateKey, root: x509.Certificate, root_key: rsa.RSAPrivateKey,
    base_url: str, now: datetime,
) -> x509.Certificate:
    grca = f"{base_url}{MOICA_PROFILE_PATH}"
    aki = x509.AuthorityKeyIdentifier(
        root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest, None, None
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    policies = x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(MOICA_POLICY_OID), None)])
    constraints = x509.BasicConstraints(ca=True, path_length=0)
    crl_dp = x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(f"{grca}/GRCA-{generation}.crl")], None, None, None)]
    )
    ca_issuers = x509.AccessDescription(
        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(f"{grca}/GRCA-{generation}.cer")
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(MOICA_SUBJECT)
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 20))
        .add_extension(aki, critical=False)
        .add_extension(ski, critical=False)
    )
    if generation == "G3":
        # As MOICA-G3.cer: AKI, SKI, keyUsage (critical), CRL DP, AIA (caIssuers, then GRCA's OCSP),
        # basicConstraints (critical, pathLen 0), certificatePolicies.
        builder = (
            builder.add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(crl_dp, critical=False)
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        ca_issuers,
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{grca}/grca/ocsp")
                        ),
                    ]
                ),
                critical=False,
            )
            .add_extension(constraints, critical=True)
            .add_extension(policies, critical=False)
        )
    else:
        # As MOICA2.cer: AKI, SKI, keyUsage (critical; no digitalSignature), certificatePolicies,
        # basicConstraints (critical, pathLen 0), CRL DP, AIA with caIssuers alone (GRCA G2 declares no OCSP).
        builder = (
            builder.add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(policies, critical=False)
            .add_extension(constraints, critical=True)
            .add_extension(crl_dp, critical=False)
            .add_extension(x509.AuthorityInformationAccess([ca_issuers]), critical=False)
        )
    return builder.sign(root_key, hashes.SHA256())


def _moica_urls(base_url: str, generation: str) -> CitizenUrls:
    here = f"{base_url}{MOICA_PROFILE_PATH}"
    return CitizenUrls(f"{here}/MOICA-{generation}.crl", f"{here}/moica/ocsp", f"{here}/MOICA-{generation}.cer")


class MoicaProfilePKI(_CardStore):
    """Both generations of the real MOICA profile on our own keys, and citizen cards of each.

    Files: ``GRCA-G2.pem``, ``MOICA-G2.pem``, ``GRCA-G3.pem``, ``MOICA-G3.pem`` (and their ``.key.pem``),
    ``cards/`` as in :class:`DemoPKI`. The CAs' CRLs (:meth:`crl`) and two OCSP responders (:meth:`ocsp_response`:
    ``"grca"`` for the MOICA certificates, ``"moica"`` for the citizens') answer as the real ones do; MOICA G2's
    certificate, like the real one, names no OCSP responder at GRCA, so only GRCA G2's CRL speaks for it.
    """

    AUTHORITIES = tuple(f"{ca}-{generation}" for generation in GENERATIONS for ca in ("GRCA", "MOICA"))

    @classmethod
    def in_demo_pki(cls, demo_pki_dir: str | os.PathLike[str]) -> MoicaProfilePKI:
        """The MOICA-profile PKI kept beside the demo PKI (where the development server serves it from)."""
        return cls(Path(demo_pki_dir) / MOICA_PROFILE_DIR)

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        base_url: str,
        now: datetime | None = None,
        *,
        people=MOICA_PROFILE_PEOPLE,
    ) -> MoicaProfilePKI:
        """Create GRCA and MOICA of both generations and a valid card of each of ``people``; ``base_url``
        serves the CRLs and OCSP (:data:`MOICA_PROFILE_PATH` under it)."""
        now = now or datetime.now(timezone.utc)
        target = Path(directory)
        (target / "cards").mkdir(parents=True, exist_ok=True)
        base_url = base_url.rstrip("/")
        for generation in GENERATIONS:
            root_key = _new_key(_ROOT_KEY_BITS[generation])
            moica_key = _new_key(_MOICA_KEY_BITS[generation])
            root = _grca_certificate(generation, root_key, now)
            moica = _moica_certificate(generation, moica_key, root, root_key, base_url, now)
            for name, cert, key in ((f"GRCA-{generation}", root, root_key), (f"MOICA-{generation}", moica, moica_key)):
                (target / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
                _write_private(target / f"{name}.key.pem", _pem_key(key))
        manifest = {"base_url": base_url, "created_at": now.isoformat(), "cards": [], "revoked": []}
        (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        pki = cls(target)
        for name, national_id, card_number, generation in people:
            pki.issue_card(name, national_id, card_number, generation=generation, now=now)
        return pki

    # -- reading ----------------------------------------------------------------------------------

    def certificate(self, authority: str) -> x509.Certificate:
        """The certificate of ``authority``, one of :attr:`AUTHORITIES` (``"MOICA-G3"``, say)."""
        if authority not in self.AUTHORITIES:
            raise KeyError(authority)
        return x509.load_pem_x509_certificate((self.directory / f"{authority}.pem").read_bytes())

    def _key(self, authority: str) -> rsa.RSAPrivateKey:
        if authority not in self.AUTHORITIES:
            raise KeyError(authority)
        return serialization.load_pem_private_key((self.directory / f"{authority}.key.pem").read_bytes(), None)

    def anchor_paths(self) -> tuple[str, ...]:
        """The files to configure as MOCERT_CARD_TRUST_ANCHORS: GRCA G2 and G3."""
        return tuple(str(self.directory / f"GRCA-{g}.pem") for g in GENERATIONS)

    def intermediate_paths(self) -> tuple[str, ...]:
        """The files to configure as MOCERT_CARD_INTERMEDIATES: MOICA G2 and G3."""
        return tuple(str(self.directory / f"MOICA-{g}.pem") for g in GENERATIONS)

    # -- cards --------------------------------------------------------------------------------------

    def issue_card(
        self,
        name: str,
        national_id: str,
        card_number: str,
        *,
        generation: str = "G3",
        now: datetime | None = None,
        key_usage: x509.KeyUsage | None = None,
        policy: bool = True,
        signed_by: str | None = None,
    ) -> DemoCard:
        """A valid card of MOICA ``generation``, its signing and encryption certificates, added to the manifest.

        What a real MOICA never issues, for the tests of what is refused: ``key_usage`` replaces the signing
        certificate's (digitalSignature alone), ``policy=False`` leaves MOICA's policy out of both, and
        ``signed_by`` (a generation) signs the signing certificate with that generation's key while its
        authority key identifier still names ``generation``'s.
        """
        if generation not in GENERATIONS or (signed_by is not None and signed_by not in GENERATIONS):
            raise ValueError(f"a MOICA generation is one of {GENERATIONS}")
        return self._issue(
            self._new_card(name, national_id, card_number, generation=generation),
            self.certificate(f"MOICA-{generation}"), self._key(f"MOICA-{generation}"),
            _moica_urls(self.manifest["base_url"], generation), now,
            signing={
                "key_usage": key_usage, "policy": policy,
                "signed_with": self._key(f"MOICA-{signed_by}") if signed_by else None,
            },
            encryption={"policy": policy},
        )

    def revoke_card(self, card: DemoCard, now: datetime | None = None) -> None:
        """Revoke both of the card's certificates (key compromise), as MOICA revokes a lost card."""
        now = now or datetime.now(timezone.utc)
        entries = [
            {"serial": serial, "revoked_at": now.isoformat(), "reason": "key_compromise"}
            for serial in (card.certificate_serial, card.encryption_serial)
        ]
        cards = [
            {**c, "status": "revoked"} if c["card_number"] == card.card_number else c for c in self.manifest["cards"]
        ]
        self._write_manifest({**self.manifest, "cards": cards, "revoked": [*self.manifest["revoked"], *entries]})

    # -- revocation -------------------------------------------------------------------------------

    def _issued_by(self, authority: str) -> dict[int, ca_status.Revocation | None]:
        """The serials ``authority`` issued, each with its revocation (None while good)."""
        if authority.startswith("GRCA-"):
            # GRCA's users here are its MOICA; a revoked MOICA would be listed in the manifest's "revoked".
            moica = self.certificate(f"MOICA-{authority.removeprefix('GRCA-')}")
            serials = [moica.serial_number]
        else:
            generation = authority.removeprefix("MOICA-")
            serials = [
                serial
                for card in self.cards
                if card.generation == generation
                for serial in (card.certificate_serial, card.encryption_serial)
            ]
        return {serial: self._revocation(serial) for serial in serials}

    def crl(self, authority: str, now: datetime | None = None) -> bytes:
        """A freshly signed DER CRL of ``authority`` (one of :attr:`AUTHORITIES`)."""
        now = now or datetime.now(timezone.utc)
        revoked = [r for r in self._issued_by(authority).values() if r is not None]
        return ca_status.sign_crl(
            self.certificate(authority),
            self._key(authority),
            revoked,
            number=int(now.timestamp()),
            this_update=now - timedelta(minutes=1),
            next_update=now + CRL_VALIDITY,
        )

    def ocsp_response(self, responder: str, request_der: bytes, now: datetime | None = None) -> bytes:
        """Answer an OCSP request at ``responder`` ("grca" or "moica"): about a certificate that one of its
        CAs (of either generation that has a responder there) issued, signed by that CA itself."""
        now = now or datetime.now(timezone.utc)
        request = ca_status.load_ocsp_request(request_der)
        if request is None:
            return ca_status.malformed_request()
        # GRCA G2 has no OCSP responder (MOICA G2's certificate names none); MOICA answers for both generations.
        authorities = {"grca": ("GRCA-G3",), "moica": ("MOICA-G2", "MOICA-G3")}.get(responder, ())
        for authority in authorities:
            issuer = self.certificate(authority)
            issued = self._issued_by(authority)
            if request.serial_number in issued and ca_status.names_issuer(request, issuer):
                revocation = issued[request.serial_number]
                return ca_status.answer(
                    request,
                    issuer,
                    self._key(authority),
                    status=ocsp.OCSPCertStatus.REVOKED if revocation else ocsp.OCSPCertStatus.GOOD,
                    revocation=revocation,
                    this_update=now - timedelta(minutes=1),
                    next_update=now + OCSP_VALIDITY,
                )
        return ca_status.unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class CitizenUrls:
    """Where a citizen certificate says its issuer's CRL, OCSP responder and certificate are."""

    crl: str
    ocsp: str
    ca_issuers: str


def _demo_urls(base_url: str) -> CitizenUrls:
    here = f"{base_url}/pki/demo"
    return CitizenUrls(f"{here}/issuer.crl", f"{here}/ocsp", f"{here}/issuer.cer")


def citizen_key_usage(purpose: str) -> x509.KeyUsage:
    """MOICA's key usage of a card's ``purpose`` "signing" or "encryption" certificate."""
    if purpose not in ("signing", "encryption"):
        raise ValueError(f"no citizen certificate for {purpose!r}")
    signing = purpose == "signing"
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,  # nonRepudiation: not on real cards' certificates
        key_encipherment=not signing,
        data_encipherment=not signing,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _has_extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return False
    return True


def _write_encryption_pair(
    cards_dir: Path,
    card: DemoCard,
    issuer: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    not_before: datetime,
    not_after: datetime,
    urls: CitizenUrls,
    *,
    id_last4: bool = True,
    policy: bool = True,
) -> None:
    """The card's encryption key pair and certificate: ``<card_number>.enc.pem`` and ``.enc.key.pem``."""
    key = _new_key()
    cert = _citizen_certificate(
        card, key, issuer, issuer_key, not_before, not_after, urls,
        id_last4=id_last4, purpose="encryption", serial=card.encryption_serial, policy=policy,
    )
    (cards_dir / f"{card.card_number}.enc.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(cards_dir / f"{card.card_number}.enc.key.pem", _pem_key(key))


def _citizen_certificate(
    card: DemoCard,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    not_before: datetime,
    not_after: datetime,
    urls: CitizenUrls,
    *,
    id_last4: bool = True,
    purpose: str = "signing",
    serial: int | None = None,
    key_usage: x509.KeyUsage | None = None,
    policy: bool = True,
    signed_with: rsa.RSAPrivateKey | None = None,
) -> x509.Certificate:
    """A citizen certificate in MOICA's profile: ``purpose`` "signing" (key usage digitalSignature alone, as
    real cards: a login is an authentication, not a signed document, so nonRepudiation is absent) or
    "encryption" (keyEncipherment + dataEncipherment).

    For tests of what must be refused: ``key_usage`` replaces the purpose's, ``policy=False`` leaves out
    MOICA's policy, and ``signed_with`` signs with another key than the one the AKI names (``issuer_key``).
    """
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.COMMON_NAME, card.name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, card.subject_serial),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else card.certificate_serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(key_usage or citizen_key_usage(purpose), critical=True)
    )
    if policy:
        builder = builder.add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(MOICA_POLICY_OID), None)]),
            critical=False,
        )
    if id_last4:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                ExtensionOID.SUBJECT_DIRECTORY_ATTRIBUTES, subject_directory_attributes(card.national_id[-4:])
            ),
            critical=False,
        )
    return (
        builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(urls.crl)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(urls.ocsp),
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(urls.ca_issuers),
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(signed_with or issuer_key, hashes.SHA256())
    )
