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
  for every sign-in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers.api import CertificateFetcher, CRLFetcher, Fetchers, OCSPFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.crl_client import RequestsCRLFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.ocsp_client import RequestsOCSPFetcher
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    PKIXValidationParams,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

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


class RevocationCache:
    """Thread-safe store of revocation answers, each kept until its own nextUpdate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[object, tuple[object, datetime]] = {}

    def get(self, key: object, now: datetime) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires = entry
            if now >= expires:
                del self._entries[key]
                return None
            return value

    def put(self, key: object, value: object, expires: datetime | None) -> None:
        # No nextUpdate means "fetch again next time": a cache must not invent a validity period.
        if expires is None:
            return
        with self._lock:
            self._entries[key] = (value, expires)

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
        self._anchors = [asn1_x509.Certificate.load(der) for der in settings.anchors]
        self._intermediates = [asn1_x509.Certificate.load(der) for der in settings.intermediates]
        self._issuers = [
            (_key_identifier(cert), cert)
            for cert in (x509.load_der_x509_certificate(der) for der in (*settings.anchors, *settings.intermediates))
        ]
        self._origins = frozenset(
            {origin for _, cert in self._issuers for origin in _origins_named_by(cert)}
            | {parse_origin(origin) for origin in settings.revocation_origins}
        )
        self._cache = cache or RevocationCache()
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
        try:
            self._configured_issuer(certificate)
            _check_signing_certificate(certificate)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise CertificateNotAccepted(f"the certificate's extensions cannot be read: {exc}") from exc

    def validate(self, certificate: x509.Certificate) -> None:
        """Raise one of the card-login errors unless the certificate is valid for signing right now."""
        self.check_offline(certificate)
        end_entity = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
        origins, timeout = self._origins, self._settings.fetch_timeout
        fetchers = Fetchers(
            ocsp_fetcher=_CachingOCSPFetcher(_GuardedOCSPFetcher(origins, per_request_timeout=timeout), self._cache),
            crl_fetcher=_CachingCRLFetcher(_GuardedCRLFetcher(origins, per_request_timeout=timeout), self._cache),
            cert_fetcher=_NoCertificateFetcher(),
        )
        context = ValidationContext(
            trust_roots=self._anchors,
            # Only configured certificates: nothing the card sends, nothing fetched, can become a CA.
            other_certs=self._intermediates,
            allow_fetching=True,
            fetchers=fetchers,
            revinfo_policy=self._revinfo_policy,
        )
        validator = CertificateValidator(end_entity, validation_context=context, pkix_params=self._pkix_params)
        try:
            # digitalSignature alone: a login is an authentication. nonRepudiation is for signing documents,
            # and real MOICA cards' signing certificates do not state it.
            _run_sync(validator.async_validate_usage({"digital_signature"}))
        except pv_errors.RevokedError as exc:
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


def _key_identifier(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


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


class _CachingOCSPFetcher(OCSPFetcher):
    def __init__(self, inner: OCSPFetcher, cache: RevocationCache) -> None:
        self._inner, self._cache = inner, cache
        self._by_cert: dict[object, list[asn1_ocsp.OCSPResponse]] = {}

    async def fetch(self, cert, authority) -> asn1_ocsp.OCSPResponse:
        key = ("ocsp", authority.public_key.sha256, cert.serial_number)
        response = self._cache.get(key, _now())
        if response is None:
            response = await self._inner.fetch(cert, authority)
            self._cache.put(key, response, _ocsp_next_update(response))
        self._by_cert.setdefault(cert.issuer_serial, []).append(response)
        return response

    def fetched_responses(self) -> Iterable[asn1_ocsp.OCSPResponse]:
        return [r for responses in self._by_cert.values() for r in responses]

    def fetched_responses_for_cert(self, cert) -> Iterable[asn1_ocsp.OCSPResponse]:
        return self._by_cert.get(cert.issuer_serial, [])


class _CachingCRLFetcher(CRLFetcher):
    def __init__(self, inner: CRLFetcher, cache: RevocationCache) -> None:
        self._inner, self._cache = inner, cache
        self._by_cert: dict[object, list[asn1_crl.CertificateList]] = {}

    async def fetch(self, cert, *, use_deltas=None) -> Iterable[asn1_crl.CertificateList]:
        key = ("crl", tuple(sorted(_crl_urls(cert))))
        crls = self._cache.get(key, _now())
        if crls is None:
            crls = list(await self._inner.fetch(cert, use_deltas=use_deltas))
            updates = [c["tbs_cert_list"]["next_update"].native for c in crls]
            self._cache.put(key, crls, min(updates) if updates and None not in updates else None)
        self._by_cert[cert.issuer_serial] = crls
        return crls

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


def _crl_urls(cert: asn1_x509.Certificate) -> list[str]:
    urls = []
    for point in cert.crl_distribution_points or []:
        urls.append(point.url or "")
    return urls
