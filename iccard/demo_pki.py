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

from . import ca_status
from .certificate import subject_directory_attributes

# MOICA's certificate policy. The demo uses the real OID so that a deployment changes only its trust
# anchors, not its policy settings, when it moves from the demo to the real cards.
MOICA_POLICY_OID = "2.16.886.101.0.3.3"
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


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


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


class DemoPKI:
    """A demo PKI stored in ``directory``. Create it with :meth:`create`, open it with the constructor."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    # -- creation ---------------------------------------------------------------------------------

    @classmethod
    def exists(cls, directory: str | os.PathLike[str]) -> bool:
        return (Path(directory) / "manifest.json").is_file()

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
            cert = _citizen_certificate(card, key, issuer, issuer_key, not_before, not_after, base_url)
            (target / "cards" / f"{card.card_number}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_private(target / "cards" / f"{card.card_number}.key.pem", _pem_key(key))
            _write_encryption_pair(target / "cards", card, issuer, issuer_key, not_before, not_after, base_url)
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
            if card.encryption_serial is None or not (self.directory / "cards" / f"{card.card_number}.enc.pem").is_file():
                signing = self.card_certificate(card)
                card = replace(card, encryption_serial=card.encryption_serial or x509.random_serial_number())
                _write_encryption_pair(
                    self.directory / "cards", card, self.issuer_certificate, self._issuer_key,
                    signing.not_valid_before_utc, signing.not_valid_after_utc, self.manifest["base_url"],
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

    def _write_manifest(self, manifest: dict) -> None:
        (self.directory / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        self.__dict__.pop("manifest", None)  # re-read on next use

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
    def manifest(self) -> dict:
        return json.loads((self.directory / "manifest.json").read_text())

    @cached_property
    def root_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / "root.pem").read_bytes())

    @cached_property
    def issuer_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / "issuer.pem").read_bytes())

    @cached_property
    def _issuer_key(self) -> rsa.RSAPrivateKey:
        return serialization.load_pem_private_key((self.directory / "issuer.key.pem").read_bytes(), None)

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

    def issue_card(
        self, name: str, national_id: str, card_number: str, now: datetime | None = None, *, id_last4: bool = True
    ) -> DemoCard:
        """A further valid card (a replacement, say) from the demo issuing CA, added to the manifest.

        ``id_last4=False`` leaves out the last four digits of the national ID, as some real certificates do.
        """
        now = now or datetime.now(timezone.utc)
        key = _new_key()
        card = DemoCard(
            name=name,
            national_id=national_id,
            card_number=card_number,
            subject_serial=f"{len(self.cards) + 1:016d}",
            status="valid",
            certificate_serial=x509.random_serial_number(),
            encryption_serial=x509.random_serial_number(),
        )
        not_before, not_after = now - timedelta(minutes=1), now + timedelta(days=5 * 365)
        cert = _citizen_certificate(
            card, key, self.issuer_certificate, self._issuer_key, not_before, not_after, self.manifest["base_url"],
            id_last4=id_last4,
        )
        (self.directory / "cards" / f"{card_number}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(self.directory / "cards" / f"{card_number}.key.pem", _pem_key(key))
        _write_encryption_pair(
            self.directory / "cards", card, self.issuer_certificate, self._issuer_key, not_before, not_after,
            self.manifest["base_url"], id_last4=id_last4,
        )
        self._write_manifest({**self.manifest, "cards": [*self.manifest["cards"], asdict(card)]})
        return card

    # -- the identity check -----------------------------------------------------------------------

    def confirms_identity(self, certificate_der: bytes, national_id: str) -> bool:
        """Whether ``certificate_der`` is exactly one of the demo cards, and that card is ``national_id``'s."""
        for card in self.cards:
            if self.card_certificate(card).public_bytes(serialization.Encoding.DER) == certificate_der:
                return card.national_id == national_id
        return False

    # -- revocation -------------------------------------------------------------------------------

    @property
    def _revoked(self) -> dict[int, dict]:
        return {entry["serial"]: entry for entry in self.manifest["revoked"]}

    def crl(self, now: datetime | None = None) -> bytes:
        """A freshly signed DER CRL of the issuing CA."""
        now = now or datetime.now(timezone.utc)
        revoked = [
            ca_status.Revocation(
                serial, datetime.fromisoformat(entry["revoked_at"]), x509.ReasonFlags[entry["reason"]]
            )
            for serial, entry in self._revoked.items()
        ]
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
        entry = self._revoked.get(request.serial_number)
        revocation = (
            ca_status.Revocation(
                request.serial_number, datetime.fromisoformat(entry["revoked_at"]), x509.ReasonFlags[entry["reason"]]
            )
            if entry
            else None
        )
        return ca_status.answer(
            request,
            self.issuer_certificate,
            self._issuer_key,
            status=ocsp.OCSPCertStatus.REVOKED if revocation else ocsp.OCSPCertStatus.GOOD,
            revocation=revocation,
            this_update=now - timedelta(minutes=1),
            next_update=now + OCSP_VALIDITY,
        )


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
    base_url: str,
    *,
    id_last4: bool = True,
) -> None:
    """The card's encryption key pair and certificate: ``<card_number>.enc.pem`` and ``.enc.key.pem``."""
    key = _new_key()
    cert = _citizen_certificate(
        card, key, issuer, issuer_key, not_before, not_after, base_url,
        id_last4=id_last4, purpose="encryption", serial=card.encryption_serial,
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
    base_url: str,
    *,
    id_last4: bool = True,
    purpose: str = "signing",
    serial: int | None = None,
) -> x509.Certificate:
    """A citizen certificate in MOICA's profile: ``purpose`` "signing" (key usage digitalSignature alone, as
    real cards: a login is an authentication, not a signed document, so nonRepudiation is absent) or
    "encryption" (keyEncipherment + dataEncipherment)."""
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
        .add_extension(citizen_key_usage(purpose), critical=True)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(MOICA_POLICY_OID), None)]),
            critical=False,
        )
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
                        [x509.UniformResourceIdentifier(f"{base_url}/pki/demo/issuer.crl")], None, None, None
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
                        x509.UniformResourceIdentifier(f"{base_url}/pki/demo/ocsp"),
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(f"{base_url}/pki/demo/issuer.cer"),
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
