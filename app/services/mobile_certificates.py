"""Issuing mobile certificates (行動自然人憑證): X.509 certificates for a bound phone's credential key,
and their status, which relying parties check themselves (CRL and OCSP, ``app/mobile_pki``).

Valid one year from binding (or renewal), on the same calendar date; a certificate issued on 29 February
ends on 28 February. Independent of the card: nothing here looks at the card that proved the person.

Every certificate names where its status is published (authority information access: the OCSP responder
and the CA certificate; a CRL distribution point), under ``PUBLIC_URL``. A suspended device's certificates
are on hold (``certificateHold``) until it is resumed; a revoked device's are revoked for good; a
certificate that a newer one of the same device replaces (renewal, reissue) is revoked as ``superseded``,
so a device has one live certificate. Every change republishes the CRL in the same transaction; none of
the methods here commits: the caller commits with its audit record.

:class:`MobileCertificates` is built once at startup (``app/wiring.py``) around the configured CA.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import selectinload

import webauthn
from iccard import ca_status

from ..audit import Tags, record
from ..extensions import db
from ..models import Device, DeviceStatus, MobileCertificate, MobileCrl, utcnow
from .tokens import NationalIdHash

CREDENTIAL_URN = "urn:mocert:credential:"
PKI_PATH = "/pki/mobile"  # app/mobile_pki serves ca.cer, ca.crl and ocsp under it
HOLD = x509.ReasonFlags.certificate_hold.value
# RFC 5280 reason names a certificate may be revoked for good with (a hold is not one of them).
REVOCATION_REASONS = tuple(
    r.value for r in x509.ReasonFlags if r not in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl)
)
OCSP_VALIDITY = timedelta(hours=1)  # an answer's nextUpdate: how long a relying party may cache it


def one_year_later(moment: datetime) -> datetime:
    """The same calendar date a year on; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + 1, day=28)


@dataclass(frozen=True)
class StatusUrls:
    """Where a relying party finds a mobile certificate's status; every certificate names them."""

    ocsp: str
    ca_issuers: str  # the CA certificate (DER)
    crl: str

    @classmethod
    def under(cls, public_url: str) -> StatusUrls:
        base = public_url.rstrip("/") + PKI_PATH
        return cls(ocsp=f"{base}/ocsp", ca_issuers=f"{base}/ca.cer", crl=f"{base}/ca.crl")

    @classmethod
    def named_by(cls, certificate: x509.Certificate) -> StatusUrls | None:
        """The places ``certificate`` names, or None if it names none (or not exactly one of each)."""
        try:
            aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            cdp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            return None
        ocsp_urls = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]
        ca_urls = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
        crl_urls = [name.value for point in cdp for name in point.full_name or ()]
        if len(ocsp_urls) != 1 or len(ca_urls) != 1 or len(crl_urls) != 1:
            return None
        return cls(ocsp=ocsp_urls[0], ca_issuers=ca_urls[0], crl=crl_urls[0])


@dataclass(frozen=True)
class MobileCA:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    status_urls: StatusUrls | None = None  # named by every certificate issued (the configured CA always has them)

    @classmethod
    def load(cls, certificate_path: str, key_path: str, status_urls: StatusUrls | None = None) -> MobileCA:
        """The CA from its PEM files. Raises ``ValueError`` (or ``OSError``) when either does not load or the
        key is not the certificate's."""
        certificate = x509.load_pem_x509_certificate(Path(certificate_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
            raise ValueError(f"{key_path} is not an EC, RSA or Ed25519 key")
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, public) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, public
        ):
            raise ValueError(f"{key_path} is not the key of the certificate {certificate_path}")
        return cls(certificate, key, status_urls)

    @property
    def key_id(self) -> str:
        """The CA key's identifier (hex), as in the authority key identifier of what it signs."""
        return x509.SubjectKeyIdentifier.from_public_key(self.certificate.public_key()).digest.hex()

    def issue(
        self, *, cose_public_key: bytes, name: str, pseudonym: str, credential_id: bytes, not_before: datetime
    ) -> x509.Certificate:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, pseudonym),
            ]
        )
        credential = base64.urlsafe_b64encode(credential_id).rstrip(b"=").decode()
        return self._sign(
            subject,
            webauthn.public_key_from_cose(cose_public_key),
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(CREDENTIAL_URN + credential)]),
            not_before,
            one_year_later(not_before),
        )

    def reissue(self, previous: x509.Certificate, not_before: datetime) -> x509.Certificate:
        """The same subject, key and credential until the same notAfter, under a new serial (and with
        this CA's status URLs)."""
        return self._sign(
            previous.subject,
            previous.public_key(),
            previous.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            not_before,
            previous.not_valid_after_utc,
        )

    def _sign(
        self,
        subject: x509.Name,
        public_key: object,
        alternative_names: x509.SubjectAlternativeName,
        not_before: datetime,
        not_after: datetime,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(alternative_names, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.certificate.public_key()), critical=False
            )
        )
        if self.status_urls is not None:
            urls = self.status_urls
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(urls.ca_issuers)
                        ),
                    ]
                ),
                critical=False,
            ).add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl)], None, None, None)]
                ),
                critical=False,
            )
        algorithm = None if isinstance(self.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return builder.sign(self.key, algorithm)


# -- the CA's work: issuing, hold, release, revoke; the CRL and OCSP ---------------------------------------


@dataclass(frozen=True)
class Reissued:
    device_id: int
    certificate: str | None  # the new serial, if the newest certificate was reissued
    superseded: tuple[str, ...]


class MobileCertificates:
    """The mobile CA at work: it issues a device's certificates, changes their status and publishes it.

    ``ca`` names the status URLs in what it signs (None: the demo's CA, not made yet); ``crl_validity`` is
    how long a published CRL is good for (``MOCERT_MOBILE_CRL_VALIDITY``); ``national_id_hash`` keys the
    subject's pseudonymous serial.
    """

    def __init__(self, *, ca: MobileCA | None, crl_validity: timedelta, national_id_hash: NationalIdHash) -> None:
        self._ca, self.crl_validity, self._national_id_hash = ca, crl_validity, national_id_hash

    @property
    def ca(self) -> MobileCA:
        if self._ca is None:
            raise RuntimeError(
                "the demo mobile-certificate CA (MOCERT_MOBILE_CA_CERT) was not made when the server started: "
                "run flask --app wsgi pki init-demo, then start the server again"
            )
        return self._ca

    def pseudonym(self, national_id_hash: str) -> str:
        """A stable serial for the certificate subject that does not reveal (or lead to) the national ID."""
        return self._national_id_hash.derive("mobile", national_id_hash)[:16].upper()

    def issue(self, device: Device, not_before: datetime) -> MobileCertificate:
        """A year's certificate for the device's key (added and flushed, not committed)."""
        account = device.account
        issued = self.ca.issue(
            cose_public_key=device.public_key,
            name=account.name,
            pseudonym=self.pseudonym(account.national_id_hash),
            credential_id=device.credential_id,
            not_before=not_before,
        )
        certificate = MobileCertificate(
            device=device,
            serial_hex=f"{issued.serial_number:x}",
            not_before=issued.not_valid_before_utc,
            not_after=issued.not_valid_after_utc,
            der=issued.public_bytes(serialization.Encoding.DER),
        )
        db.session.add(certificate)
        db.session.flush()
        db.session.refresh(device, ["certificates"])
        return certificate

    def hold_certificates(self, device: Device) -> list[str]:
        """Put the device's certificates on hold (its suspension); returns the serials that changed."""
        now = _now()
        changed = [c for c in device.certificates if c.revoked_at is None]
        for certificate in changed:
            certificate.revoked_at, certificate.revocation_reason = now, HOLD
        return self._republished(changed, now)

    def release_certificates(self, device: Device) -> list[str]:
        """Take the device's held certificates off the CRL (its resumption); a revoked one stays revoked."""
        changed = [c for c in device.certificates if c.on_hold]
        for certificate in changed:
            certificate.revoked_at, certificate.revocation_reason = None, None
        return self._republished(changed, _now())

    def revoke_certificates(self, device: Device, reason: str) -> list[str]:
        """Revoke the device's certificates for good, for an RFC 5280 ``reason`` (``keyCompromise``,
        ``cessationOfOperation``, …; see :data:`REVOCATION_REASONS`). Returns the serials that changed.

        A held certificate keeps its hold time as the revocation time: it has not been trusted since.
        Raises ValueError for a reason that is not a revocation reason.
        """
        _check_reason(reason)
        now = _now()
        changed = [c for c in device.certificates if not c.revoked]
        for certificate in changed:
            _revoke(certificate, reason, now)
        return self._republished(changed, now)

    def supersede_certificates(self, device: Device, current: MobileCertificate) -> list[str]:
        """Revoke as ``superseded`` the device's certificates other than ``current`` (call it when renewing)."""
        now = _now()
        changed = [c for c in device.certificates if c is not current and not c.revoked]
        for certificate in changed:
            _revoke(certificate, x509.ReasonFlags.superseded.value, now)
        return self._republished(changed, now)

    def ca_certificate_der(self) -> bytes:
        return self.ca.certificate.public_bytes(serialization.Encoding.DER)

    def current_crl(self, now: datetime | None = None) -> bytes:
        """The published CRL (DER). One past or within half its validity of its nextUpdate is replaced by a
        fresh one first (not committed: the caller commits), unless another request replaced it meanwhile:
        fetches of a stale CRL at the same time sign one new CRL between them, and each serves it."""
        now = now or _now()
        crl = self._stored_crl()
        if crl is None or crl.next_update - now < self.crl_validity / 2:
            crl = self._publish_crl(now, replacing=crl.crl_number if crl else 0) or self._stored_crl(reread=True)
        return crl.der

    def ocsp_response(self, request_der: bytes, now: datetime | None = None) -> bytes:
        """The OCSP answer (DER) to ``request_der``, signed by the mobile CA itself: good, revoked (with its
        time and reason; a hold is revoked/certificateHold) or unknown for a certificate that is not ours.
        A request that cannot be read gets ``malformedRequest``."""
        ocsp_request = ca_status.load_ocsp_request(request_der)
        if ocsp_request is None:
            return ca_status.malformed_request()
        now = now or _now()
        ca = self.ca
        certificate = None
        if ca_status.names_issuer(ocsp_request, ca.certificate):
            certificate = db.session.scalar(
                select(MobileCertificate).where(MobileCertificate.serial_hex == f"{ocsp_request.serial_number:x}")
            )
        revocation = _revocation(certificate) if certificate is not None and certificate.revoked_at else None
        if certificate is None:
            status = ocsp.OCSPCertStatus.UNKNOWN
        else:
            status = ocsp.OCSPCertStatus.REVOKED if revocation else ocsp.OCSPCertStatus.GOOD
        return ca_status.answer(
            ocsp_request,
            ca.certificate,
            ca.key,
            status=status,
            revocation=revocation,
            this_update=now,
            next_update=now + OCSP_VALIDITY,
            certificates=[ca.certificate],
        )

    def reissue_with_status_urls(self, actor: str = "cli", now: datetime | None = None) -> list[Reissued]:
        """Give every live device one live certificate that names the current status URLs.

        A device's newest live (unrevoked, unexpired) certificate that does not name them is reissued (same
        subject, key and notAfter, a new serial); the certificate it replaces, and any older live ones, are
        revoked as superseded. Audited per device; idempotent. Not committed: the caller commits.
        """
        now = now or _now()
        live = db.session.scalars(
            select(MobileCertificate)
            .join(MobileCertificate.device)
            .where(
                Device.status != DeviceStatus.REVOKED,
                MobileCertificate.not_after > now,
                or_(MobileCertificate.revoked_at.is_(None), MobileCertificate.revocation_reason == HOLD),
            )
            .options(selectinload(MobileCertificate.device).selectinload(Device.account))
            .order_by(MobileCertificate.device_id, MobileCertificate.not_after.desc(), MobileCertificate.id.desc())
        ).all()
        by_device: dict[int, list[MobileCertificate]] = {}
        for certificate in live:
            by_device.setdefault(certificate.device_id, []).append(certificate)

        done: list[Reissued] = []
        for newest, *older in by_device.values():
            if StatusUrls.named_by(x509.load_der_x509_certificate(newest.der)) == self.ca.status_urls:
                replacement = None
            else:
                replacement = self._reissue(newest, now)
                older.insert(0, newest)
            for certificate in older:
                _revoke(certificate, x509.ReasonFlags.superseded.value, now)
            if replacement is not None or older:
                done.append(Reissued(newest.device_id, replacement and replacement.serial_hex,
                                     tuple(c.serial_hex for c in older)))
        if done:
            self._publish_crl(now)
            devices = {c.device_id: c.device for c in live}
            for item in done:
                record(
                    Tags.DEVICE_CERTIFICATE_REISSUED if item.certificate else Tags.DEVICE_CERTIFICATE_SUPERSEDED,
                    account=devices[item.device_id].account,
                    actor=actor,
                    device=item.device_id,
                    certificate=item.certificate,
                    superseded=list(item.superseded),
                )
        return done

    def _reissue(self, previous: MobileCertificate, now: datetime) -> MobileCertificate:
        issued = self.ca.reissue(x509.load_der_x509_certificate(previous.der), now)
        certificate = MobileCertificate(
            device=previous.device,
            serial_hex=f"{issued.serial_number:x}",
            not_before=issued.not_valid_before_utc,
            not_after=issued.not_valid_after_utc,
            der=issued.public_bytes(serialization.Encoding.DER),
            issued_at=now,
        )
        if previous.on_hold:  # the device is still suspended: so is its new certificate
            certificate.revoked_at, certificate.revocation_reason = now, HOLD
        db.session.add(certificate)
        return certificate

    def _republished(self, changed: list[MobileCertificate], now: datetime) -> list[str]:
        if changed:
            self._publish_crl(now)
        return [c.serial_hex for c in changed]

    def _publish_crl(self, now: datetime, *, replacing: int | None = None) -> MobileCrl | None:
        """Sign and store a new CRL of every unexpired certificate with a revocation time, numbered one more
        than the last. Bumping the number first locks the CRL's row, so publications follow one another and
        each lists what the ones before it committed.

        With ``replacing`` (the number of the CRL seen stale; 0 when there was none), only that CRL is
        replaced: if another transaction has published since, nothing is done and None is returned.
        """
        ca = self.ca
        db.session.flush()  # this transaction's own changes are on the list
        if not _bump_crl_number(ca.key_id, replacing):
            dialect = db.session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            db.session.execute(  # the first CRL of this CA key, unless another transaction just made it
                insert(MobileCrl)
                .values(issuer_key_id=ca.key_id, crl_number=0, this_update=now, next_update=now, der=b"")
                .on_conflict_do_nothing(index_elements=["issuer_key_id"])
            )
            if not _bump_crl_number(ca.key_id, replacing):
                return None
        crl = self._stored_crl(reread=True)
        listed = db.session.scalars(
            select(MobileCertificate)
            .where(MobileCertificate.revoked_at.is_not(None), MobileCertificate.not_after > now)
            .order_by(MobileCertificate.revoked_at, MobileCertificate.id)
        )
        crl.this_update, crl.next_update = now, now + self.crl_validity
        crl.der = ca_status.sign_crl(
            ca.certificate,
            ca.key,
            _revocations(listed),
            number=crl.crl_number,
            this_update=crl.this_update,
            next_update=crl.next_update,
        )
        db.session.flush()
        return crl

    def _stored_crl(self, *, reread: bool = False) -> MobileCrl | None:
        """The stored CRL of the CA's key; ``reread`` refreshes it from the database (a number just bumped, or
        a CRL another transaction has committed) rather than keeping what this session has already read."""
        query = select(MobileCrl).where(MobileCrl.issuer_key_id == self.ca.key_id)
        return db.session.scalar(query.execution_options(populate_existing=True) if reread else query)


def _now() -> datetime:
    return utcnow().replace(microsecond=0)  # X.509 and OCSP times have whole seconds


def _check_reason(reason: str) -> None:
    if reason not in REVOCATION_REASONS:
        raise ValueError(f"{reason!r} is not an RFC 5280 revocation reason ({', '.join(REVOCATION_REASONS)})")


def _revoke(certificate: MobileCertificate, reason: str, now: datetime) -> None:
    certificate.revoked_at = certificate.revoked_at if certificate.on_hold else now
    certificate.revocation_reason = reason


def _revocation(certificate: MobileCertificate) -> ca_status.Revocation:
    return ca_status.Revocation(
        int(certificate.serial_hex, 16),
        certificate.revoked_at.replace(microsecond=0),  # a device's revocation time, moved here by 0006
        x509.ReasonFlags(certificate.revocation_reason),
    )


def _bump_crl_number(key_id: str, replacing: int | None = None) -> bool:
    """Number the next CRL (locking the row until commit); with ``replacing``, only if the stored CRL still
    has that number. The number is checked after the lock is had: on PostgreSQL a transaction that waited
    re-reads the row another just committed, and SQLite lets one writer at a time in."""
    condition = MobileCrl.issuer_key_id == key_id
    if replacing is not None:
        condition &= MobileCrl.crl_number == replacing
    result = db.session.execute(
        update(MobileCrl)
        .where(condition)
        .values(crl_number=MobileCrl.crl_number + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _revocations(certificates: Iterable[MobileCertificate]) -> Iterable[ca_status.Revocation]:
    return (_revocation(c) for c in certificates)
