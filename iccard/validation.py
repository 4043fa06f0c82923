"""RFC 5280 path validation of card certificates, with revocation, on pyhanko-certvalidator.

This is the only module that imports pyhanko-certvalidator. Path building, policy processing and
OCSP/CRL checking are the library's; what we add is what it leaves to the caller:

* our own errors, one per reason a relying party must distinguish;
* no request for a stranger: a certificate must be issued by a configured CA (its authority key
  identifier names the CA's key, and that key verifies its signature) before anything is fetched; the
  library never fetches a certificate (AIA caIssuers); and OCSP and CRLs are fetched only from the
  origins (scheme, host, port) that the configured CA certificates name, or that the deployment adds,
  without following redirects;
* a revocation cache shared across logins that keeps each OCSP response and CRL until its nextUpdate
  (the library's fetchers only cache within one validation), so a busy login page does not ask the CA
  for every sign-in. What one validation fetched is kept aside and enters the cache only once the
  validation has ended with the revocation information trusted (valid, or revoked), and only what we
  checked ourselves to be signed by the certificate's issuer (or a responder it delegated to) about that
  certificate: revocation is fetched over plain HTTP, and a forged answer kept until a far nextUpdate
  would refuse every later login.

A login costs what it must: the card's certificate is parsed once (:class:`~iccard.certificate.ParsedCertificate`),
the configured certificates and trust roots once per validator, the paths from a card's issuer up to a root once
per issuer (:class:`_IssuerPaths`: each validation still checks the whole path, signatures, validity, policy and
every certificate's revocation, anew), and a card found valid on revocation answers that are all still the
cache's is not validated again while they are (:class:`_ValidatedCards`: its answers are looked up each login).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers.api import CertificateFetcher, CRLFetcher, Fetchers, OCSPFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.crl_client import RequestsCRLFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.ocsp_client import RequestsOCSPFetcher
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    PKIXValidationParams,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import PathBuilder, SimpleTrustManager
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator
from pyhanko_certvalidator.util import CancelableAsyncIterator

from .certificate import Digests, ParsedCertificate, key_identifier
from .errors import (
    CertificateExpired,
    CertificateNotAccepted,
    CertificateNotYetValid,
    CertificateRevoked,
    IssuerRevocationUnknown,
    RevocationUnknown,
    UnknownIssuer,
)
from .origins import origin_of, parse_origin

REVOCATION_MODES = ("hard-fail", "soft-fail")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrustSettings:
    """What a deployment trusts: roots, the intermediates it may meet, policies, revocation mode."""

    anchors: tuple[bytes, ...]  # DER
    intermediates: tuple[bytes, ...] = ()
    policy_oids: tuple[str, ...] = ()
    revocation_mode: str = "hard-fail"
    fetch_timeout: float = 5.0
    # Origins (``scheme://host[:port]``) OCSP and CRLs may come from besides those the CA certificates name:
    # a CA's users are often served from other hosts than the CA's own certificate names.
    revocation_origins: tuple[str, ...] = ()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RevocationCache:
    """Thread-safe store of revocation answers shared across logins, each kept until its own nextUpdate
    but never longer than :attr:`MAX_LIFETIME` after it was fetched, and at most ``max_entries`` of them.

    ``clock`` tells the time the entries are judged by (a test moves it; the library checks each answer's
    freshness against the real time on every use regardless).
    """

    # GRCA's CPS gives its CRLs 36 hours; a nextUpdate further away, from any responder, is more likely a
    # mistake or a forgery than a CA's word, and the cap bounds how long one answer can stand in for the CA.
    MAX_LIFETIME = timedelta(hours=36)
    # Each card seen adds its OCSP answer, and an entry no one asks for again would otherwise stay forever:
    # every PRUNE_EVERY puts the expired ones go, and past MAX_ENTRIES those that expire soonest.
    MAX_ENTRIES = 10_000
    PRUNE_EVERY = 100

    def __init__(self, clock: Callable[[], datetime] = _now, *, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[object, tuple[object, datetime]] = {}
        self._puts = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def now(self) -> datetime:
        return self._clock()

    def get(self, key: object) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
            return value

    def put(self, key: object, value: object, next_update: datetime | None, *, fetched_at: datetime) -> None:
        # No nextUpdate means "fetch again next time": a cache must not invent a validity period.
        if next_update is None:
            return
        expires = min(next_update, fetched_at + self.MAX_LIFETIME)
        with self._lock:
            self._entries[key] = (value, expires)
            self._puts += 1
            if self._puts % self.PRUNE_EVERY == 0 or len(self._entries) > self._max_entries:
                self._prune()

    def _prune(self) -> None:
        now = self._clock()
        for key in [key for key, (_, expires) in self._entries.items() if now >= expires]:
            del self._entries[key]
        excess = len(self._entries) - self._max_entries
        if excess > 0:
            soonest = heapq.nsmallest(excess, self._entries.items(), key=lambda item: item[1][1])
            for key, _ in soonest:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class CardCertificateValidator:
    """Validates a card's signing certificate to the configured trust anchors at the current time."""

    def __init__(self, settings: TrustSettings, cache: RevocationCache | None = None) -> None:
        if settings.revocation_mode not in REVOCATION_MODES:
            raise ValueError(f"revocation mode must be one of {REVOCATION_MODES}")
        if not settings.anchors:
            raise ValueError("at least one trust anchor is required")
        self._settings = settings
        self._anchors = [_parsed_through(der) for der in settings.anchors]
        self._intermediates = [_parsed_through(der) for der in settings.intermediates]
        # The trust roots as the library's trust anchors, once (every validation reads them, none changes them).
        self._trust_manager = SimpleTrustManager.build(trust_roots=self._anchors)
        self._paths = _IssuerPaths(
            anchor_keys={cert.public_key.dump() for cert in self._anchors},
            configured={cert.issuer_serial for cert in (*self._anchors, *self._intermediates)},
        )
        self._issuers = [
            (key_identifier(cert), cert)
            for cert in (x509.load_der_x509_certificate(der) for der in (*settings.anchors, *settings.intermediates))
        ]
        # The keys a CRL about a certificate may be signed with: its configured issuer's, by key identifier.
        self._issuer_keys: dict[bytes, list[asn1_keys.PublicKeyInfo]] = {}
        for key_id, cert in self._issuers:
            spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            self._issuer_keys.setdefault(key_id, []).append(asn1_keys.PublicKeyInfo.load(spki))
        self._origins = frozenset(
            {origin for _, cert in self._issuers for origin in _origins_named_by(cert)}
            | {parse_origin(origin) for origin in settings.revocation_origins}
        )
        self._cache = cache if cache is not None else RevocationCache()  # an empty one is falsy (len)
        self._validated = _ValidatedCards(self._cache)
        # The cards that passed check_offline (the configured issuers' signature, key usage), by DER's SHA-256.
        self._checked_offline = Digests(4096)
        rule = (
            RevocationCheckingRule.CRL_OR_OCSP_REQUIRED
            if settings.revocation_mode == "hard-fail"
            else RevocationCheckingRule.CHECK_IF_DECLARED_SOFT
        )
        self._revinfo_policy = CertRevTrustPolicy(
            RevocationCheckingPolicy(
                ee_certificate_rule=rule,
                # CA certificates are checked when they declare where to look (MOICA's does).
                intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
            )
        )
        self._pkix_params = (
            PKIXValidationParams(
                user_initial_policy_set=frozenset(settings.policy_oids),
                initial_explicit_policy=True,
            )
            if settings.policy_oids
            else None
        )

    @property
    def revocation_cache(self) -> RevocationCache:
        return self._cache

    @property
    def revocation_origins(self) -> frozenset[str]:
        """Where OCSP and CRLs may be fetched from: the CA certificates' own origins and the configured ones."""
        return self._origins

    def check_offline(self, certificate: x509.Certificate) -> None:
        """Refuse, without any network request, what cannot be a valid card: a CA or non-signing
        certificate, or one that no configured CA issued (raises :class:`UnknownIssuer`)."""
        digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
        if self._checked_offline.seen(digest):  # these very bytes passed: the same checks would pass again
            return
        try:
            self._configured_issuer(certificate)
            _check_signing_certificate(certificate)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise CertificateNotAccepted(f"the certificate's extensions cannot be read: {exc}") from exc
        self._checked_offline.add(digest)

    def validate(self, certificate: x509.Certificate | ParsedCertificate) -> None:
        """Raise one of the card-login errors unless the certificate is valid for signing right now.

        A :class:`~iccard.certificate.ParsedCertificate` (what reading a card's answer made) is validated as it
        was parsed; a bare ``cryptography`` certificate is parsed for the library first.
        """
        parsed = certificate if isinstance(certificate, ParsedCertificate) else None
        if parsed is not None:
            certificate = parsed.certificate
        self.check_offline(certificate)
        der = certificate.public_bytes(Encoding.DER)
        if self._validated.still_valid(der):
            return
        if parsed is not None:
            end_entity = parsed.asn1
        else:
            end_entity = asn1_x509.Certificate.load(der)
        origins, timeout = self._origins, self._settings.fetch_timeout
        ocsp_fetcher = _CachingOCSPFetcher(_GuardedOCSPFetcher(origins, per_request_timeout=timeout), self._cache)
        crl_fetcher = _CachingCRLFetcher(
            _GuardedCRLFetcher(origins, per_request_timeout=timeout), self._cache, self._issuer_keys_of
        )
        fetchers = Fetchers(ocsp_fetcher=ocsp_fetcher, crl_fetcher=crl_fetcher, cert_fetcher=_NoCertificateFetcher())
        context = ValidationContext(
            trust_manager=self._trust_manager,
            # Only configured certificates: nothing the card sends, nothing fetched, can become a CA.
            other_certs=self._intermediates,
            allow_fetching=True,
            fetchers=fetchers,
            revinfo_policy=self._revinfo_policy,
        )
        context.path_builder = _KnownPathBuilder(context.path_builder, self._paths, end_entity)
        validator = CertificateValidator(end_entity, validation_context=context, pkix_params=self._pkix_params)
        try:
            # digitalSignature alone: a login is an authentication. nonRepudiation is for signing documents,
            # and real MOICA cards' signing certificates do not state it.
            path = _run_sync(validator.async_validate_usage({"digital_signature"}))
        except pv_errors.RevokedError as exc:
            # A revocation the library believed: the answers it came from are the CA's.
            ocsp_fetcher.commit()
            crl_fetcher.commit()
            raise CertificateRevoked(str(exc)) from exc
        except pv_errors.InsufficientRevinfoError as exc:
            if not exc.is_ee_cert:  # the issuing CA's status (MOICA's, at GRCA), not the card's
                raise IssuerRevocationUnknown(str(exc)) from exc
            raise RevocationUnknown(str(exc)) from exc
        except pv_errors.ExpiredError as exc:
            raise CertificateExpired(str(exc)) from exc
        except pv_errors.NotYetValidError as exc:
            raise CertificateNotYetValid(str(exc)) from exc
        except pv_errors.PathBuildingError as exc:
            raise UnknownIssuer(str(exc)) from exc
        except pv_errors.InvalidCertificateError as exc:
            raise CertificateNotAccepted(str(exc)) from exc
        except pv_errors.PathValidationError as exc:
            raise _classify_path_error(exc) from exc
        # Valid: the revocation information was trusted. Any other outcome commits nothing: what was fetched may
        # be what made it fail (a forgery served once would otherwise refuse every login until its nextUpdate).
        ocsp_fetcher.commit()
        crl_fetcher.commit()
        self._validated.put(der, path, {**ocsp_fetcher.consulted, **crl_fetcher.consulted})

    def _issuer_keys_of(self, certificate: asn1_x509.Certificate) -> list[asn1_keys.PublicKeyInfo]:
        return self._issuer_keys.get(certificate.authority_key_identifier, [])

    def _configured_issuer(self, certificate: x509.Certificate) -> x509.Certificate:
        # By key identifier, then signature: every MOICA generation has the same name, and a name is
        # anyone's to write into a certificate.
        try:
            wanted = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            wanted = None
        if wanted is None:
            raise UnknownIssuer("the certificate does not identify its issuer's key")
        for key_id, issuer in self._issuers:
            if key_id != wanted:
                continue
            try:
                certificate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return issuer
        raise UnknownIssuer("no configured certification authority issued this certificate")


def _check_signing_certificate(certificate: x509.Certificate) -> None:
    """Refuse a CA or non-signing certificate before asking any responder about it."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise CertificateNotAccepted("a CA certificate cannot log in")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateNotAccepted("the certificate states no key usage") from None
    if not usage.digital_signature:
        raise CertificateNotAccepted("the certificate's key is not for signing")


def _classify_path_error(exc: pv_errors.PathValidationError) -> Exception:
    # The library's remaining PathValidationErrors carry no subtype for these cases, only a message.
    text = str(exc).lower()
    if "revocation" in text or "ocsp" in text or "crl" in text:
        return RevocationUnknown(str(exc)) if exc.is_ee_cert else IssuerRevocationUnknown(str(exc))
    if "signature" in text:
        return UnknownIssuer(str(exc))
    return CertificateNotAccepted(str(exc))


def _origins_named_by(cert: x509.Certificate) -> set[str]:
    """The http(s) origins of a CA certificate's CRL distribution points and AIA (OCSP, caIssuers)."""
    urls = []
    try:
        for point in cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value:
            urls += [name.value for name in point.full_name or () if isinstance(name, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    try:
        for access in cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value:
            if access.access_method in (AuthorityInformationAccessOID.OCSP, AuthorityInformationAccessOID.CA_ISSUERS):
                if isinstance(access.access_location, x509.UniformResourceIdentifier):
                    urls.append(access.access_location.value)
    except x509.ExtensionNotFound:
        pass
    return {origin for origin in map(origin_of, urls) if origin is not None}


def _parsed_through(der: bytes) -> asn1_x509.Certificate:
    """A configured certificate, parsed completely once: every validation reads it, from any thread, and
    asn1crypto parses a field on its first read."""
    certificate = asn1_x509.Certificate.load(der)
    certificate.native  # noqa: B018
    return certificate


def _run_sync(coroutine):
    """Run the library's coroutine to completion from synchronous code.

    Inside a thread that already runs an event loop (an async server, or anything driving one) a
    second loop cannot start, so the work goes to a short-lived thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class _ValidatedCards:
    """The cards this validator found valid lately, each with the revocation answers that said so.

    A card whose every answer (its own status, its CA's at the root) is still the very one in the revocation
    cache, within its nextUpdate, would be found valid again by the library: the same certificates, the same
    signatures and policies, the same answers; only the time moves, and the entry goes when the first
    certificate of its path (or of a responder that signed one of the answers) expires. So a login of such a
    card checks it offline (its issuer's signature, key usage) and looks its answers up in the cache, and the
    path is not validated again. An answer that left the cache (past its nextUpdate, cleared, or replaced by a
    newer one, revoked perhaps) ends the entry: the next login validates the whole path, fetching what it must.
    Only a validation whose every certificate's status came from an answer that is now in the cache is kept: one
    that fetched something not kept (a forgery, "unknown"), or decided without an answer (soft-fail with the
    responders down), is validated again each time. At most :attr:`MAX_ENTRIES` cards, the oldest going first.
    """

    MAX_ENTRIES = 4096

    def __init__(self, cache: RevocationCache) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[datetime, tuple[tuple[object, object], ...]]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _now(self) -> datetime:
        # The later of the cache's time (a test moves it) and the real one: the certificates expire in both.
        return max(_now(), self._cache.now())

    def still_valid(self, der: bytes) -> bool:
        """Whether the card with this DER was found valid on answers that are all still the cache's."""
        with self._lock:
            entry = self._entries.get(der)
        if entry is None:
            return False
        valid_until, answers = entry
        if self._now() < valid_until and all(
            value is not None and self._cache.get(key) is value for key, value in answers
        ):
            return True
        with self._lock:
            if self._entries.get(der) is entry:
                del self._entries[der]
        return False

    def put(self, der: bytes, path: ValidationPath, consulted: dict[object, object | None]) -> None:
        """Keep the card as valid, found so on ``path`` with the answers ``consulted`` (by cache key), if they
        are all in the cache now."""
        # A lookup that got nothing (the responder down, soft-fail; or OCSP down and the CRL deciding) is
        # recorded as None, and so is the cache's entry for it: "the same" would hold for ever, and the card
        # would never be asked about again. Only answers actually held are kept.
        if not consulted or any(
            value is None or self._cache.get(key) is not value for key, value in consulted.items()
        ):
            return
        certificates = [*path.iter_certs(include_root=True)]
        for value in consulted.values():
            if isinstance(value, asn1_ocsp.OCSPResponse):
                certificates += _responder_certificates(value)
        valid_until = min(cert["tbs_certificate"]["validity"]["not_after"].native for cert in certificates)
        with self._lock:
            self._entries.pop(der, None)
            self._entries[der] = (valid_until, tuple(consulted.items()))
            while len(self._entries) > self.MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]


def _responder_certificates(response: asn1_ocsp.OCSPResponse) -> list[asn1_x509.Certificate]:
    try:
        return list(response.basic_ocsp_response["certs"] or ())
    except (KeyError, ValueError, TypeError, AttributeError):
        return []


class _IssuerPaths:
    """The validation paths from a card's issuer up to a trust anchor, kept per issuer.

    Building them looked names up and compared them (asn1crypto preparing each name for it) and set up a
    registry of issuers: per login, more than half the work of validating the path. They depend only on what the card's certificate says of its issuer (name, key
    identifier, issuer and serial in the authority key identifier) and on the configured certificates, which
    do not change for a validator; so a card with the same issuer as an earlier one gets the same paths, with
    itself at the end. The library validates the whole path each time: only the search is saved, never a
    check (signatures, validity, policy, each certificate's revocation). An entry goes when the first of its
    certificates expires (its paths would fail anyway, and are built again then) and, past
    :attr:`MAX_ENTRIES`, the oldest first.

    Where the library's own search could find other paths for one card than for another of the same issuer,
    no path is kept or used: a card that is a configured trust anchor itself (its path is that anchor alone),
    or one with the issuer and serial number of a configured certificate (the search skips a certificate it
    has seen in the path already).
    """

    MAX_ENTRIES = 64

    def __init__(self, *, anchor_keys: set[bytes], configured: set[bytes], clock: Callable[[], datetime] = _now) -> None:
        self._anchor_keys, self._configured, self._clock = frozenset(anchor_keys), frozenset(configured), clock
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[tuple[ValidationPath, ...], datetime]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def key_of(self, certificate: asn1_x509.Certificate) -> tuple | None:
        """What the search for ``certificate``'s paths depends on, or None when its paths are not to be kept."""
        if certificate.public_key.dump() in self._anchor_keys or certificate.issuer_serial in self._configured:
            return None
        return (
            certificate.issuer.dump(),
            certificate.authority_key_identifier,
            certificate.authority_issuer_serial,
        )

    def get(self, key: tuple, certificate: asn1_x509.Certificate) -> list[ValidationPath] | None:
        """The kept paths for ``key``, each ending at ``certificate``; None if none are kept."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            paths, expires = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
        return [path.copy_and_append(certificate) for path in paths]

    def put(self, key: tuple, paths: list[ValidationPath]) -> None:
        """Keep ``paths`` (as built for a certificate with ``key``, it at their end) without their last certificate."""
        if not paths:
            return
        above = tuple(_without_leaf(path) for path in paths)
        expires = min(
            cert["tbs_certificate"]["validity"]["not_after"].native
            for path in above
            for cert in path.iter_certs(include_root=True)
        )
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (above, expires)
            while len(self._entries) > self.MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]


def _without_leaf(path: ValidationPath) -> ValidationPath:
    try:
        return path.copy_and_drop_leaf()
    except IndexError:  # the leaf's issuer is the trust anchor
        return ValidationPath(path.trust_anchor, [], None)


class _KnownPathBuilder(PathBuilder):
    """The library's path builder, serving the card's certificate its issuer's kept paths (see :class:`_IssuerPaths`).

    A miss builds them all with the library's own search, keeps them, and serves them; should that search fail,
    nothing is kept and the library's lazy search runs again, to fail (or not) just as it does. Every other
    certificate (a CRL's or an OCSP responder's issuer) is the library's alone.
    """

    def __init__(self, builder: PathBuilder, paths: _IssuerPaths, end_entity: asn1_x509.Certificate) -> None:
        super().__init__(trust_manager=builder.trust_manager, registry=builder.registry)
        self._paths, self._end_entity = paths, end_entity

    def async_build_paths_lazy(self, end_entity_cert: asn1_x509.Certificate) -> CancelableAsyncIterator[ValidationPath]:
        key = self._paths.key_of(end_entity_cert) if end_entity_cert is self._end_entity else None
        if key is None:
            return super().async_build_paths_lazy(end_entity_cert)
        return _KnownPaths(self, key, end_entity_cert)


class _KnownPaths(CancelableAsyncIterator[ValidationPath]):
    def __init__(self, builder: _KnownPathBuilder, key: tuple, certificate: asn1_x509.Certificate) -> None:
        self._builder, self._key, self._certificate = builder, key, certificate
        self._paths: Iterable[ValidationPath] | None = None
        self._library: CancelableAsyncIterator[ValidationPath] | None = None

    def __aiter__(self):
        return self

    async def __anext__(self) -> ValidationPath:
        if self._paths is None and self._library is None:
            await self._start()
        if self._library is not None:
            return await self._library.__anext__()
        try:
            return next(self._paths)
        except StopIteration:
            raise StopAsyncIteration from None

    async def _start(self) -> None:
        kept = self._builder._paths.get(self._key, self._certificate)
        if kept is not None:
            self._paths = iter(kept)
            return
        library = PathBuilder.async_build_paths_lazy(self._builder, self._certificate)
        try:
            built = [path async for path in library]
        except Exception:  # noqa: BLE001 - the library's own search, run again below, raises what it raises
            await library.cancel()
            self._library = PathBuilder.async_build_paths_lazy(self._builder, self._certificate)
            return
        self._builder._paths.put(self._key, built)
        self._paths = iter(built)

    async def cancel(self) -> None:
        if self._library is not None:
            await self._library.cancel()


class _NotAllowed(requests.RequestException):
    """A revocation address outside the allowed origins; the library reports it as a failed fetch."""


class _OriginGuard:
    """Replaces the requests fetchers' two HTTP calls: allowed origins only, and no redirects (a
    redirect could lead anywhere, the server's own network included)."""

    _origins: frozenset[str]
    per_request_timeout: float
    user_agent: str

    def _get(self, url, *, acceptable_content_types):
        return asyncio.to_thread(self._request, "GET", url, {"Accept": ",".join(acceptable_content_types)})

    def _post(self, url, data, *, content_type, acceptable_content_types):
        headers = {"Accept": ",".join(acceptable_content_types), "Content-Type": content_type}
        return asyncio.to_thread(self._request, "POST", url, headers, data)

    def _request(self, method: str, url: str, headers: dict, data: bytes | None = None) -> requests.Response:
        if origin_of(url) not in self._origins:
            # Logged so that an operator sees which host a real card needs (MOCERT_CARD_REVOCATION_HOSTS).
            logger.warning("not fetching %s: not an allowed revocation origin", url)
            raise _NotAllowed(f"{url} is not on an allowed revocation host")
        response = requests.request(
            method,
            url,
            data=data,
            headers={**headers, "User-Agent": self.user_agent},
            timeout=self.per_request_timeout,
            allow_redirects=False,
        )
        if response.status_code != 200:
            raise requests.RequestException(f"status code {response.status_code}")
        return response


class _GuardedOCSPFetcher(_OriginGuard, RequestsOCSPFetcher):
    def __init__(self, origins: frozenset[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self._origins = origins


class _GuardedCRLFetcher(_OriginGuard, RequestsCRLFetcher):
    def __init__(self, origins: frozenset[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self._origins = origins


class _NoCertificateFetcher(CertificateFetcher):
    """Issuers come from configuration only: a certificate's caIssuers address is never fetched."""

    async def fetch_cert_issuers(self, cert):
        raise pv_errors.CertificateFetchError("certificates are not fetched; configure the issuing CA")
        yield  # an async generator, as the interface wants

    async def fetch_crl_issuers(self, certificate_list):
        # None found: a CRL whose issuer is not configured cannot be checked, and OCSP must answer.
        return
        yield

    def fetched_certs(self) -> Iterable[asn1_x509.Certificate]:
        return ()


@dataclass(frozen=True)
class _Fetched:
    """An answer fetched during one validation, waiting for it to end: see :meth:`CardCertificateValidator.validate`."""

    value: object
    fetched_at: datetime


class _CachingOCSPFetcher(OCSPFetcher):
    """Answers from the shared cache, else from the responder; what it fetched enters the cache on :meth:`commit`."""

    def __init__(self, inner: OCSPFetcher, cache: RevocationCache) -> None:
        self._inner, self._cache = inner, cache
        self._by_cert: dict[object, list[asn1_ocsp.OCSPResponse]] = {}
        self._fetched: dict[object, tuple[_Fetched, asn1_x509.Certificate, asn1_keys.PublicKeyInfo]] = {}
        # Every answer asked for, by cache key: the one used, or None while (or if) there is none.
        self.consulted: dict[object, asn1_ocsp.OCSPResponse | None] = {}

    async def fetch(self, cert, authority) -> asn1_ocsp.OCSPResponse:
        key = ("ocsp", authority.public_key.sha256, cert.serial_number)
        self.consulted.setdefault(key, None)
        response = self._cache.get(key)
        if response is None:
            fetched_at = self._cache.now()
            response = await self._inner.fetch(cert, authority)
            self._fetched[key] = (_Fetched(response, fetched_at), cert, authority.public_key)
        self.consulted[key] = response
        self._by_cert.setdefault(cert.issuer_serial, []).append(response)
        return response

    def commit(self) -> None:
        """Keep what was fetched that its CA signed about the certificate asked for (the library's check on
        each use stays the real one; this keeps a forgery out of the cache)."""
        for key, (fetched, cert, issuer_key) in self._fetched.items():
            next_update = _ocsp_next_update(fetched.value)
            # Not an answer (tryLater, unauthorized), one to ask again next time, or "unknown": that decided
            # nothing (the CRL did), and kept it would skip this card's responder until its nextUpdate.
            if next_update is None or _ocsp_cert_status(fetched.value) not in ("good", "revoked"):
                continue
            if _ocsp_vouched_for(fetched.value, cert, issuer_key, fetched.fetched_at):
                self._cache.put(key, fetched.value, next_update, fetched_at=fetched.fetched_at)
            else:
                logger.warning("an OCSP answer about serial %s is not its CA's: not kept", cert.serial_number)
        self._fetched.clear()

    def fetched_responses(self) -> Iterable[asn1_ocsp.OCSPResponse]:
        return [r for responses in self._by_cert.values() for r in responses]

    def fetched_responses_for_cert(self, cert) -> Iterable[asn1_ocsp.OCSPResponse]:
        return self._by_cert.get(cert.issuer_serial, [])


class _CachingCRLFetcher(CRLFetcher):
    """CRLs from the shared cache, else from the distribution points; what it fetched enters the cache on
    :meth:`commit`."""

    def __init__(
        self,
        inner: CRLFetcher,
        cache: RevocationCache,
        issuer_keys_of: Callable[[asn1_x509.Certificate], list[asn1_keys.PublicKeyInfo]],
    ) -> None:
        self._inner, self._cache, self._issuer_keys_of = inner, cache, issuer_keys_of
        self._by_cert: dict[object, list[asn1_crl.CertificateList]] = {}
        self._fetched: dict[object, tuple[_Fetched, asn1_x509.Certificate]] = {}
        self.consulted: dict[object, list[asn1_crl.CertificateList] | None] = {}  # as the OCSP fetcher's

    async def fetch(self, cert, *, use_deltas=None) -> Iterable[asn1_crl.CertificateList]:
        # By issuer key as well: MOICA's generations share a name, and a CRL serves only its issuer's certificates.
        key = ("crl", cert.authority_key_identifier, tuple(sorted(_crl_urls(cert))))
        self.consulted.setdefault(key, None)
        crls = self._cache.get(key)
        if crls is None:
            fetched_at = self._cache.now()
            crls = list(await self._inner.fetch(cert, use_deltas=use_deltas))
            self._fetched[key] = (_Fetched(crls, fetched_at), cert)
        self.consulted[key] = crls
        self._by_cert[cert.issuer_serial] = crls
        return crls

    def commit(self) -> None:
        """Keep the fetched CRLs that the certificate's configured issuer signed, until the earliest nextUpdate."""
        for key, (fetched, cert) in self._fetched.items():
            keys = self._issuer_keys_of(cert)
            if not keys:  # the certificate names no configured CA key (no authority key identifier, or another's)
                logger.warning("no configured CA key for the CRLs of %s: not kept", cert.subject.human_friendly)
                continue
            crls = [c for c in fetched.value if any(_crl_signed_for(c, cert, k) for k in keys)]
            if len(crls) < len(fetched.value):
                logger.warning("a CRL for %s was not signed by its CA: not kept", cert.subject.human_friendly)
            updates = [c["tbs_cert_list"]["next_update"].native for c in crls]
            if crls and None not in updates:
                self._cache.put(key, crls, min(updates), fetched_at=fetched.fetched_at)
        self._fetched.clear()

    def fetched_crls(self) -> Iterable[asn1_crl.CertificateList]:
        return [c for crls in self._by_cert.values() for c in crls]

    def fetched_crls_for_cert(self, cert) -> Iterable[asn1_crl.CertificateList]:
        return self._by_cert[cert.issuer_serial]


def _ocsp_next_update(response: asn1_ocsp.OCSPResponse) -> datetime | None:
    try:
        if response["response_status"].native != "successful":
            return None
        single = response.basic_ocsp_response["tbs_response_data"]["responses"][0]
        return single["next_update"].native
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None


def _ocsp_cert_status(response: asn1_ocsp.OCSPResponse) -> str | None:
    """The first answer's status, "good", "revoked" or "unknown" (None: no answer to read)."""
    try:
        return response.basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_status"].name
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None


# -- is a fetched answer the CA's own? -------------------------------------------------------------
#
# The library checks every answer on every use; these checks decide only what may enter the shared cache.
# They are narrower than the library's (a response of one answer, by the CA or a responder it certified),
# so an answer they miss is merely fetched again next time.


def _ocsp_vouched_for(
    response: asn1_ocsp.OCSPResponse, cert: asn1_x509.Certificate, issuer_key: asn1_keys.PublicKeyInfo, now: datetime
) -> bool:
    """Whether ``response`` answers for ``cert`` alone, signed with ``issuer_key`` or by a responder whose
    certificate, sent with it, that key signed for OCSP signing and that is valid ``now``."""
    try:
        if response["response_status"].native != "successful":
            return False
        basic = response.basic_ocsp_response
        tbs = basic["tbs_response_data"]
        if len(tbs["responses"]) != 1:
            return False
        cert_id = tbs["responses"][0]["cert_id"]
        algorithm = cert_id["hash_algorithm"]["algorithm"].native  # sha1 or sha256 (asn1crypto's hashes)
        if (
            cert_id["serial_number"].native != cert.serial_number
            or cert_id["issuer_key_hash"].native != getattr(issuer_key, algorithm)
            or cert_id["issuer_name_hash"].native != getattr(cert.issuer, algorithm)
        ):
            return False
        signers = [issuer_key, *_delegated_responder_keys(basic, issuer_key, now)]
        return any(
            _signed_by(basic["signature"].native, tbs.dump(), basic["signature_algorithm"], key) for key in signers
        )
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return False


def _delegated_responder_keys(basic, issuer_key: asn1_keys.PublicKeyInfo, now: datetime):
    for responder in basic["certs"] or ():
        usage = responder.extended_key_usage_value
        if usage is None or "ocsp_signing" not in usage.native:
            continue
        validity = responder["tbs_certificate"]["validity"]
        if not validity["not_before"].native <= now <= validity["not_after"].native:
            continue
        tbs = responder["tbs_certificate"]
        if _signed_by(responder["signature_value"].native, tbs.dump(), responder["signature_algorithm"], issuer_key):
            yield responder.public_key


def _crl_signed_for(
    crl: asn1_crl.CertificateList, cert: asn1_x509.Certificate, issuer_key: asn1_keys.PublicKeyInfo
) -> bool:
    """Whether ``crl`` is ``cert``'s issuer's (by name) and signed with ``issuer_key``."""
    try:
        tbs = crl["tbs_cert_list"]
        if tbs["issuer"] != cert.issuer:
            return False
        return _signed_by(crl["signature"].native, tbs.dump(), crl["signature_algorithm"], issuer_key)
    except (KeyError, ValueError, TypeError, AttributeError):
        return False


def _signed_by(signature: bytes, signed_data: bytes, algorithm, key: asn1_keys.PublicKeyInfo) -> bool:
    try:
        DefaultSignatureValidator().validate_signature(
            signature=signature, signed_data=signed_data, public_key_info=key, signature_algorithm=algorithm
        )
    # The library's own signature errors are InvalidSignature's; a key of another type than the algorithm
    # (an RSA signature "by" an EC key) fails its assertion.
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError, AssertionError):
        return False
    return True


def _crl_urls(cert: asn1_x509.Certificate) -> list[str]:
    urls = []
    for point in cert.crl_distribution_points or []:
        urls.append(point.url or "")
    return urls
