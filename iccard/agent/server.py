"""The component's HTTP face on 127.0.0.1:61161, on the standard library's threading HTTP server.

Pages cannot read our answers across origins (we send no CORS headers, like the real component), so
they talk through the popup (``/popupForm``), which is ours: it learns the asking site's origin from the
browser, relays one request to ``/sign`` and posts the answer back. Requests are accepted only for
our own host names (no DNS rebinding), state-changing ones only from our own pages or from programs on
this computer, and the pages cannot be framed.
"""

from __future__ import annotations

import html
import json
import logging
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
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


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

    def _guarded(self, handler) -> None:
        # A bug must still give the popup an answer to pass on, not a dropped connection.
        try:
            handler()
        except Exception:
            log.exception("%s %s failed", self.command, urlsplit(self.path).path)
            self._json(protocol.failure("sign", protocol.CARD_FAILURE, protocol.CKR_DEVICE_ERROR, "internal error"), 500)

    def _get(self) -> None:
        if not self._own_host():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/popupForm":
            self._send(HTTPStatus.OK, _asset("popup.html"), "text/html; charset=utf-8")
        elif url.path in ("/popup.js", "/popup.css"):
            kind = "text/javascript" if url.path.endswith(".js") else "text/css"
            self._send(HTTPStatus.OK, _asset(url.path[1:]), f"{kind}; charset=utf-8")
        elif url.path == "/pkcs11info":
            with_cert = query.get("withcert", ["false"])[0].lower() == "true"
            self._json(self.server.component.pkcs11info(with_cert=with_cert))
        elif url.path == "/trust":
            origin = query.get("origin", [""])[0]
            self._json({"site": origin, "trusted": origin in self.server.component.trust})
        elif url.path == "/addDomain":
            self._confirm_page(query.get("domain", [""])[0])
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def _post(self) -> None:
        if not self._own_host():
            return
        url = urlsplit(self.path)
        form = self._form()
        if form is None:
            return
        if url.path == "/sign":
            self._sign(form)
        elif url.path == "/addDomain":
            self._add_domain(form)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    # -- functions ----------------------------------------------------------------------------------

    def _sign(self, form: dict[str, str]) -> None:
        try:
            request = json.loads(form.get("tbsPackage", ""))
            if not isinstance(request, dict):
                raise ValueError("tbsPackage must be a JSON object")
        except ValueError:
            self._json(protocol.failure("sign", protocol.BAD_REQUEST, protocol.CKR_ARGUMENTS_BAD, "bad tbsPackage"))
            return
        origin = self.headers.get("Origin")
        if origin in self.server.own_origins:
            # Relayed by our popup, which took the asking site's origin from the browser's message event.
            origin = form.get("origin") or "null"
        request.setdefault("func", "MakeSignature")
        self._json(self.server.component.handle(request, origin))

    def _add_domain(self, form: dict[str, str]) -> None:
        # Only our own pages (the popup, the confirmation page) may add a site: a person clicked there.
        if self.headers.get("Origin") not in self.server.own_origins:
            self._json({"ret_code": protocol.BAD_REQUEST, "message": "sites are added from the component's page"}, 403)
            return
        try:
            site = self.server.component.trust.add(form.get("domain", ""))
        except InvalidSite as exc:
            self._json({"ret_code": protocol.BAD_REQUEST, "message": str(exc)}, 400)
            return
        log.info("trusted site added: %s", site)
        if "application/json" in self.headers.get("Accept", ""):
            self._json({"ret_code": protocol.OK, "site": site})
        else:
            body = _page("已信任網站 Site trusted", f"<p><strong>{html.escape(site)}</strong> 已加入信任清單。<br>"
                         f"{html.escape(site)} can now ask to use your card.</p>")
            self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _confirm_page(self, domain: str) -> None:
        try:
            site = normalize_site(domain)
        except InvalidSite:
            body = _page("無效的網站 Invalid site", "<p>這不是有效的網站位址。This is not a valid site address.</p>")
            self._send(HTTPStatus.BAD_REQUEST, body, "text/html; charset=utf-8")
            return
        escaped = html.escape(site)
        body = _page(
            "信任此網站？ Trust this site?",
            f"<p>網站 <strong>{escaped}</strong> 要求使用您的憑證卡。只信任您認識的網站。<br>"
            f"<strong>{escaped}</strong> asks to use your card. Trust only sites you know.</p>"
            f'<form method="post" action="/addDomain"><input type="hidden" name="domain" value="{escaped}">'
            f'<button type="submit">信任 Trust</button></form>',
        )
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    # -- plumbing -----------------------------------------------------------------------------------

    def _own_host(self) -> bool:
        # A page on a name that resolves to 127.0.0.1 (DNS rebinding) must not reach us as "same origin".
        if self.headers.get("Host", "").lower() in self.server.own_hosts:
            return True
        self._send(HTTPStatus.FORBIDDEN, b"unknown host", "text/plain")
        return False

    def _form(self) -> dict[str, str] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large", "text/plain")
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            # A JSON body is the sign request itself (programs on this computer use it that way).
            return {"tbsPackage": raw} if isinstance(data, dict) else {"tbsPackage": ""}
        return {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}

    def _json(self, body: dict, status: int = 200) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # Paths only: a query string or body may carry a PIN, and none is ever written down.
        log.info("%s %s", self.command, urlsplit(self.path).path)


def _page(title: str, content: str) -> bytes:
    return (
        '<!doctype html><html lang="zh-Hant-TW"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="/popup.css"><title>{html.escape(title)}</title>'
        f"<main><h1>{html.escape(title)}</h1>{content}</main></html>"
    ).encode()
