"""The component's HTTP face on 127.0.0.1:61161, on the standard library's threading HTTP server.

Pages talk to it as they talk to the real HiPKI local server: through the popup (``/popupForm``, also
``/ChtPopupForm``), which is ours: it learns the asking site's origin from the browser, relays one
request and posts the answer back; through ``/p11Image.bmp`` (pkcs11info in an image's pixels, read
across origins); and, for old browser paths, directly (``/sign``, ``/decrypt``, ``/pkcs11info``,
``/CardManagement/sendCardCommand``). Every answer to a web page is decided for the Origin the browser
sent (another site's request without one, by Sec-Fetch-Site, as for an untrusted site): an untrusted site
learns only that it is not trusted, and only CORS answers may be loaded by other sites at all
(Cross-Origin-Resource-Policy on the rest). Requests are accepted only for our own host
names (no DNS rebinding); sites are added and permissions changed only from our own pages (the browser's
Origin says so), the pages cannot be framed, and no PIN is ever logged.
"""

from __future__ import annotations

import html
import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from . import protocol
from .component import LocalComponent
from .trust import InvalidSite, normalize_site

log = logging.getLogger("iccard.agent")

MAX_BODY = 64 * 1024
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # Not no-referrer: with it browsers send "Origin: null" on our own pages' form posts, and the Origin is
    # how we know a site was added, or a permission given, on our page. Other sites get no referrer.
    "Referrer-Policy": "same-origin",
}
# Served as they are: name → content type.
ASSETS = {
    "popup.js": "text/javascript; charset=utf-8",
    "popup.css": "text/css; charset=utf-8",
    "addDomain.js": "text/javascript; charset=utf-8",
    "armed.js": "text/javascript; charset=utf-8",
    "selfTest.js": "text/javascript; charset=utf-8",
    "waiting.gif": "image/gif",
}
# The popup under both of the real component's names (CHT's own library opens /ChtPopupForm).
POPUP_PATHS = ("/popupForm", "/ChtPopupForm")
# Where pages post a tbsPackage directly, and the function each means when the package names none
# (changeUserPINCode is the one card command we serve on sendCardCommand).
FUNCTION_PATHS = {
    "/sign": "MakeSignature",
    "/decrypt": "DecryptData",
    "/pkcs11info": "GetUserCert",
    "/CardManagement/sendCardCommand": "changeUserPINCode",
}
# Who asks when a browser's request from another site carries no Origin: the opaque origin's name,
# which can never be trusted (trust.normalize_site refuses it).
UNNAMED_SITE = "null"
_CONTENT_LENGTH = re.compile(r"[0-9]+", re.ASCII)
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~, -]{0,500}$")


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], component: LocalComponent) -> None:
        super().__init__(address, AgentHandler)
        self.component = component
        port = self.server_address[1]
        self.own_hosts = {f"localhost:{port}", f"127.0.0.1:{port}"}
        self.own_origins = {f"http://{host}" for host in self.own_hosts}

    @property
    def url(self) -> str:
        return f"http://localhost:{self.server_address[1]}"


def _asset(name: str) -> bytes:
    return resources.files("iccard.agent").joinpath("assets", name).read_bytes()


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "MoCertAgent/1.0"
    protocol_version = "HTTP/1.1"

    # -- routing ------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._guarded(self._preflight)

    def _guarded(self, handler) -> None:
        # A bug must still give the popup an answer to pass on, not a dropped connection.
        self._cors_origin = None
        if "Transfer-Encoding" in self.headers:
            # http.server reads no chunked body: its bytes would be taken for the next request. No browser
            # sends one to us (they send Content-Length), so any body in chunks, or coded any way, is refused.
            self._refuse_body(HTTPStatus.LENGTH_REQUIRED, b"send Content-Length, not Transfer-Encoding")
            return
        try:
            handler()
        except Exception:
            log.exception("%s %s failed", self.command, urlsplit(self.path).path)
            func = protocol.reply_func(FUNCTION_PATHS.get(urlsplit(self.path).path, "MakeSignature"))
            self._json(protocol.failure(func, protocol.TIMEOUT, protocol.CKR_FUNCTION_FAILED), 500)

    def _get(self) -> None:
        if not self._own_host():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path in POPUP_PATHS:
            self._send(HTTPStatus.OK, _asset("popup.html"), "text/html; charset=utf-8")
        elif url.path == "/selfTest.htm":
            self._send(HTTPStatus.OK, _asset("selfTest.html"), "text/html; charset=utf-8")
        elif url.path.lstrip("/") in ASSETS:
            name = url.path.lstrip("/")
            self._send(HTTPStatus.OK, _asset(name), ASSETS[name])
        elif url.path == "/p11Image.bmp":
            self._image()
        elif url.path == "/pkcs11info":
            self._pkcs11info(query.get("withcert", ["false"])[0].lower() == "true")
        elif url.path == "/trust":
            origin = query.get("origin", [""])[0]
            self._json({"site": origin, "trusted": origin in self.server.component.trust})
        elif url.path == "/addDomain":
            self._confirm_page(query.get("domain", [""])[0])
        elif url.path == "/settings":
            self._settings_page()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def _post(self) -> None:
        if not self._own_host():
            return
        url = urlsplit(self.path)
        form = self._form()
        if form is None:
            return
        if url.path in FUNCTION_PATHS:
            if url.path == "/pkcs11info" and not form.get("tbsPackage"):
                # The IE path posts an empty body; ?withcert=true says whether to list certificates.
                self._pkcs11info(parse_qs(url.query).get("withcert", ["false"])[0].lower() == "true")
            else:
                self._function(form, FUNCTION_PATHS[url.path])
        elif url.path == "/addDomain":
            self._add_domain(form)
        elif url.path == "/settings":
            self._change_settings(form)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def _preflight(self) -> None:
        # Old pages' XHRs set request headers of their own, so browsers ask first. Saying yes lets the
        # request be sent, nothing more: the request itself is answered for the Origin it comes from.
        if not self._own_host():
            return
        origin = self.headers.get("Origin")
        self.send_response(HTTPStatus.NO_CONTENT)
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
            self.send_header("Access-Control-Allow-Methods", "GET, POST")
            requested = self.headers.get("Access-Control-Request-Headers", "")
            if requested and _HEADER_LIST.match(requested):
                self.send_header("Access-Control-Allow-Headers", requested)
            if self.headers.get("Access-Control-Request-Private-Network") == "true":
                self.send_header("Access-Control-Allow-Private-Network", "true")
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- functions ----------------------------------------------------------------------------------

    def _asking_site(self, form: dict[str, str] | None = None) -> str | None:
        """The site asking, as the browser names it (None: a program on this computer, our own page, or
        the person at the address bar).

        Our popup relays for the site that opened it, whose origin it took from the browser's message
        event: that origin, not the popup's own, is the one that counts. A browser's GET may come with
        no Origin at all (a plain ``<img>``, ``<script>``, a link): then Sec-Fetch-Site still says
        whether another site made it, and such a request is answered as for a site nobody trusted. Its
        answer would be opaque to that page, but it would still land in the page's process, where a
        compromised renderer or a Spectre-style read gets every card number.
        """
        origin = self.headers.get("Origin")
        if origin in self.server.own_origins:
            return (form or {}).get("origin") or None
        if origin is None:
            if self.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
                return UNNAMED_SITE
            return None
        # The answer is decided for this origin, so it may read it (an untrusted one reads "not trusted").
        self._cors_origin = origin
        return origin

    def _function(self, form: dict[str, str], default_func: str) -> None:
        try:
            request = json.loads(form.get("tbsPackage", ""))
            if not isinstance(request, dict):
                raise ValueError("tbsPackage must be a JSON object")
        except ValueError:
            self._asking_site(form)
            self._json(protocol.failure(protocol.reply_func(default_func), protocol.JSON_ERROR))
            return
        request.setdefault("func", default_func)
        self._json(self.server.component.handle(request, self._asking_site(form)))

    def _pkcs11info(self, with_cert: bool) -> None:
        func = "GetUserCert" if with_cert else "CheckEnvir"
        self._json(self.server.component.handle({"func": func}, self._asking_site()))

    def _image(self) -> None:
        # Pages load it with img.crossOrigin="Anonymous" (the browser then sends Origin) and read the
        # canvas; reading needs Access-Control-Allow-Origin, given for the origin the answer was made for.
        answer = self.server.component.image_info(self._asking_site())
        try:
            body = protocol.json_bitmap(answer)
        except protocol.ImageTooLarge:
            body = protocol.json_bitmap(protocol.failure("pkcs11info", protocol.TIMEOUT, 0, "too many readers"))
        self._send(HTTPStatus.OK, body, "image/bmp")

    def _add_domain(self, form: dict[str, str]) -> None:
        # Only our own pages (the popup, the confirmation page) may add a site: a person clicked there.
        if not self._from_own_page():
            return
        wants_json = "application/json" in self.headers.get("Accept", "")
        try:
            site = self.server.component.trust.add(form.get("domain", ""))
        except InvalidSite as exc:
            if wants_json:
                self._json({"ret_code": protocol.BAD_PARAMETER, "message": str(exc)}, 400)
            else:
                self._send(HTTPStatus.BAD_REQUEST, _page("無效的網站 Invalid site", f"<p>{html.escape(str(exc))}</p>"),
                           "text/html; charset=utf-8")
            return
        log.info("trusted site added: %s", site)
        if wants_json:
            self._json({"ret_code": protocol.OK, "site": site})
            return
        # The real component's addDomain page posts {"ret_code":0} to the page that opened it, which then
        # reloads (addDomain.js). The answer says nothing more than that a site was added, not which: it
        # goes to "*" when the site is a bare host, and the opener may have navigated elsewhere since.
        answer = html.escape(json.dumps({"ret_code": protocol.OK}))
        escaped = html.escape(site)
        body = _page(
            "已信任網站 Site trusted",
            f'<p id="added" data-answer="{answer}" data-site="{escaped}"><strong>{escaped}</strong> 已加入信任清單。<br>'
            f'<span lang="en">{escaped} can now ask to use your card.</span></p>'
            '<p><a href="/settings">信任的網站與權限 <span lang="en">Trusted sites and permissions</span></a></p>',
            scripts=("/addDomain.js",),
        )
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _confirm_page(self, domain: str) -> None:
        try:
            site = self._site_asked(domain)
        except InvalidSite:
            body = _page("無效的網站 Invalid site", "<p>這不是有效的網站位址。This is not a valid site address.</p>")
            self._send(HTTPStatus.BAD_REQUEST, body, "text/html; charset=utf-8")
            return
        escaped = html.escape(site)
        refused = html.escape(json.dumps({"ret_code": protocol.SITE_NOT_TRUSTED,
                                          "message": protocol.MESSAGES[protocol.SITE_NOT_TRUSTED]}))
        body = _page(
            "信任此網站？ Trust this site?",
            f'<p id="asking" data-refused="{refused}">網站 <strong id="site">{escaped}</strong> 要求使用您的憑證卡。'
            "只信任您認識的網站。<br>"
            f'<span lang="en"><strong>{escaped}</strong> asks to use your card. Trust only sites you know.</span></p>'
            f'<form method="post" action="/addDomain"><input type="hidden" name="domain" value="{escaped}">'
            '<button type="submit" id="trust-yes" class="primary" disabled data-armed>信任 <span lang="en">Trust</span>'
            "</button>"
            '<button type="button" id="trust-no" disabled>拒絕 <span lang="en">Refuse</span></button></form>',
            scripts=("/armed.js", "/addDomain.js"),
        )
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _site_asked(self, domain: str) -> str:
        """The site to trust. Pages ask with ``domain=location.hostname`` (no scheme, no port). Trusted
        as it is, a bare host matches that host's origins without a port, on http as on https
        (TrustList): wider than an https page needs, and for a page on a port of its own
        (http://localhost:5000), not that page at all. So when the page that opened us (its Referer)
        is on that very host, its exact origin is trusted instead: narrower, and what the page needs."""
        site = normalize_site(domain)
        referrer = self.headers.get("Referer", "")
        if "://" not in site and referrer:
            try:
                origin = normalize_site(referrer)
            except InvalidSite:
                return site
            if urlsplit(origin).hostname == site:
                return origin
        return site

    def _settings_page(self) -> None:
        trust = self.server.component.trust
        allowed = set(trust.sha1_sites())
        rows = []
        for site in trust.sites():
            escaped = html.escape(site)
            if site in allowed:
                sha1 = (
                    '<strong class="warning">已允許 SHA-1 <span lang="en">SHA-1 allowed</span></strong>'
                    f'<form method="post" action="/settings"><input type="hidden" name="site" value="{escaped}">'
                    '<input type="hidden" name="action" value="sha1_forbid">'
                    '<button type="submit" name="forbid">停止允許 SHA-1 <span lang="en">Stop allowing SHA-1</span>'
                    "</button></form>"
                )
            else:
                sha1 = (
                    f'<form method="post" action="/settings"><input type="hidden" name="site" value="{escaped}">'
                    '<input type="hidden" name="action" value="sha1_allow">'
                    '<label><input type="checkbox" name="understood" value="yes" required> '
                    "我了解 SHA-1 簽章可被偽造 <span lang=\"en\">I understand SHA-1 signatures can be forged</span>"
                    "</label> "
                    '<button type="submit" name="allow" disabled data-armed>允許 SHA-1 <span lang="en">Allow SHA-1</span>'
                    "</button></form>"
                )
            rows.append(
                f'<li data-site="{escaped}"><strong>{escaped}</strong>{sha1}'
                f'<form method="post" action="/settings"><input type="hidden" name="site" value="{escaped}">'
                '<input type="hidden" name="action" value="remove">'
                '<button type="submit" name="remove">移除此網站 <span lang="en">Remove this site</span></button>'
                "</form></li>"
            )
        listing = f'<ul id="sites">{"".join(rows)}</ul>' if rows else (
            '<p id="no-sites">尚無信任的網站。 <span lang="en">No trusted sites yet.</span></p>'
        )
        body = _page(
            "信任的網站與權限 Trusted sites and permissions",
            "<p>這些網站可要求使用您的憑證卡（簽章、讀取憑證、解密、變更PIN碼）。<br>"
            '<span lang="en">These sites may ask to use your card (sign, read certificates, decrypt, change the PIN).'
            "</span></p>"
            '<p class="warning" id="sha1-warning"><strong>警告：</strong>SHA-1 已不安全，以 SHA-1 產生的簽章可被偽造，'
            "簽過的內容可能被換成別的文件。只為您信任、且仍要求 SHA-1 的舊網站允許。<br>"
            '<span lang="en"><strong>Warning:</strong> SHA-1 is broken: a signature made over SHA-1 can be forged '
            "and moved onto another document. Allow it only for an old site you trust that still asks for it.</span></p>"
            f"{listing}",
            scripts=("/armed.js",),  # "Allow SHA-1" is one click (after the box) too: it waits as "Trust" does
        )
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _change_settings(self, form: dict[str, str]) -> None:
        # Only the settings page itself may change a permission: a site cannot grant itself SHA-1.
        if not self._from_own_page():
            return
        trust, site, action = self.server.component.trust, form.get("site", ""), form.get("action")
        try:
            if action == "sha1_allow" and form.get("understood") == "yes":
                trust.set_sha1(site, True)
                log.info("SHA-1 allowed for %s", site)
            elif action == "sha1_forbid":
                trust.set_sha1(site, False)
            elif action == "remove":
                trust.remove(site)
                log.info("trusted site removed: %s", site)
            else:
                self._send(HTTPStatus.BAD_REQUEST, _page("無效的要求 Bad request", "<p>無效的要求。Bad request.</p>"),
                           "text/html; charset=utf-8")
                return
        except InvalidSite as exc:
            self._send(HTTPStatus.BAD_REQUEST, _page("無效的網站 Invalid site", f"<p>{html.escape(str(exc))}</p>"),
                       "text/html; charset=utf-8")
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/settings")
        self.send_header("Content-Length", "0")
        self._common_headers()
        self.end_headers()

    # -- plumbing -----------------------------------------------------------------------------------

    def _own_host(self) -> bool:
        # A page on a name that resolves to 127.0.0.1 (DNS rebinding) must not reach us as "same origin".
        if self.headers.get("Host", "").lower() in self.server.own_hosts:
            return True
        self._send(HTTPStatus.FORBIDDEN, b"unknown host", "text/plain")
        return False

    def _from_own_page(self) -> bool:
        if self.headers.get("Origin") in self.server.own_origins:
            return True
        self._json({"ret_code": protocol.DOMAIN_FORBIDDEN, "message": "sites and permissions are changed on the "
                    "component's own pages"}, 403)
        return False

    def _form(self) -> dict[str, str] | None:
        # Content-Length is 1*DIGIT and nothing else (RFC 9112 6.3): int() would also take "-5", "+5", "1_0"
        # or " 5", and a negative length reads until the client closes. Two of them, or a body in chunks,
        # leave us unsure where the body ends, so the rest could be read as a next request: refused.
        declared = [value.strip() for value in self.headers.get_all("Content-Length", [])] or ["0"]
        if len(declared) > 1 or not _CONTENT_LENGTH.fullmatch(declared[0]):
            self._refuse_body(HTTPStatus.BAD_REQUEST, b"bad Content-Length")
            return None
        digits = declared[0].lstrip("0") or "0"
        if len(digits) > len(str(MAX_BODY)) or int(digits) > MAX_BODY:  # int() refuses 4301 digits and more
            self._refuse_body(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large")
            return None
        raw = self.rfile.read(int(digits)).decode("utf-8", "replace")
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            # A JSON body is the request itself (programs on this computer use it that way).
            return {"tbsPackage": raw} if isinstance(data, dict) else {"tbsPackage": ""}
        return {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}

    def _refuse_body(self, status: int, reason: bytes) -> None:
        # The body is left unread, so the connection cannot carry another request: its bytes would be one.
        self._send(status, reason, "text/plain", {"Connection": "close"})

    def _json(self, body: dict, status: int = 200) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)  # "Connection: close" also ends the connection after this answer
        self._common_headers()
        self.end_headers()
        self.wfile.write(body)

    def _common_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if getattr(self, "_cors_origin", None):
            self.send_header("Access-Control-Allow-Origin", self._cors_origin)
            self.send_header("Vary", "Origin")
        else:
            # Everything else is ours alone: a page on another site may not even load it with a plain
            # <img> or <script> (no-cors), so no answer of ours reaches its process. A CORS answer is
            # not subject to CORP: the image trick (crossOrigin="Anonymous") keeps working.
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # Paths only: a query string or body may carry a PIN, and none is ever written down.
        log.info("%s %s", self.command, urlsplit(self.path).path)


def _page(title: str, content: str, scripts: tuple[str, ...] = ()) -> bytes:
    script_tag = "".join(f'<script src="{script}" defer></script>' for script in scripts)
    return (
        '<!doctype html><html lang="zh-Hant-TW"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="/popup.css"><title>{html.escape(title)}</title>{script_tag}'
        f"<main><h1>{html.escape(title)}</h1>{content}</main></html>"
    ).encode()
