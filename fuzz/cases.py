"""One fuzz case per (seed, database, route, number): a request generated from a ``random.Random`` seeded
with those, so a case is regenerated exactly from its name (``--replay``)."""

from __future__ import annotations

import base64
import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from . import values as v
from .wire import Request

ROOT = Path(__file__).resolve().parents[1]
IDENTITIES = ("anonymous", "visitor", "person", "admin")  # no cookie; a cookie but no login; 王小明; 陳美玲
_CONVERTER = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<var>\w+)>")


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    endpoint: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.rule}"


def routes_of(app) -> list[Route]:
    """Every rule of the app's url_map with each of its methods (HEAD and OPTIONS left to Werkzeug)."""
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append(Route(rule.rule, method, rule.endpoint))
    return sorted(found, key=lambda r: (r.rule, r.method))


def field_names() -> list[str]:
    """The names the code reads from requests (``.get("x")``, ``["x"]``), so bodies and queries use them."""
    names = set()
    for path in (ROOT / "app").rglob("*.py"):
        names.update(re.findall(r"""(?:get|pop|getlist)\(\s*["']([a-z][a-z0-9_]{1,40})["']""", path.read_text()))
    names.update(["response_type", "client_secret", "grant_type", "token", "token_type_hint", "certb64",
                  "signatureType", "cardSN", "ret_code", "code_verifier", "ui_locales", "request", "request_uri",
                  "csrf_token", "since", "until", "page", "limit", "tag", "site", "client_assertion",
                  "client_assertion_type", "login_hint", "acr_values", "display", "claims", "id_token_hint",
                  "response_mode", "registration", "scopes", "withcert"])
    return sorted(names)


@dataclass
class Identity:
    name: str
    cookie: bytes = b""  # the Cookie header value
    csrf: str = ""


@dataclass
class Context:
    """What a case may use: the seeded ids and secrets, the identities, fresh single-use things."""

    seed: object  # target.Seed
    host: bytes
    names: list[str]
    identities: dict[str, Identity]
    fresh_card_login: Callable[[], tuple[str, str]]  # -> (login_id, tbs)
    signed_answer: Callable[..., dict]  # (demo card index, tbs, signature type) -> the component's answer
    fresh_binding_credential: Callable[[], tuple[str, dict | None]]  # -> (token, credential)
    bad_certificates: list[bytes] = field(default_factory=list)
    authorize_query: str = ""  # a valid authorize request's query string


@dataclass
class Case:
    route: Route
    number: int
    identity: str
    request: Request
    note: str = ""


def generate(route: Route, number: int, seed: int, database: str, ctx: Context) -> Case:
    rng = random.Random(f"{seed}|{database}|{route.key}|{number}")
    identity = _pick_identity(route, rng)
    me = ctx.identities[identity]
    notes: list[str] = [identity]
    target = _path(route, rng, ctx, notes) + _query(route, rng, ctx, notes)
    headers: list[tuple[bytes, bytes]] = []
    body, content_type = _body(route, rng, ctx, notes)
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    request = Request(route.method, target, headers, body)
    _headers(route, rng, ctx, me, request, notes)
    return Case(route, number, identity, request, " ".join(notes))


def _pick_identity(route: Route, rng: random.Random) -> str:
    weights = (2, 2, 3, 3)
    if "/admin" in route.rule:
        weights = (2, 1, 2, 5)
    elif route.rule.startswith(("/api/v1/m/", "/m/", "/pki/", "/.well-known", "/oauth")):
        weights = (5, 2, 2, 1)
    return rng.choices(IDENTITIES, weights)[0]


# -- the path ------------------------------------------------------------------------------------------


def _path(route: Route, rng: random.Random, ctx: Context, notes: list[str]) -> bytes:
    out, last = [], 0
    for match in _CONVERTER.finditer(route.rule):
        out.append(route.rule[last:match.start()].encode())
        out.append(_segment(route, match["conv"] or "default", match["args"], match["var"], rng, ctx))
        last = match.end()
    out.append(route.rule[last:].encode())
    path = b"".join(out)
    if rng.random() < 0.02:
        path = rng.choice([path + b"/", path.replace(b"/", b"//", 1), path + b"%00", path.upper(),
                           path + b"/%2e%2e/admin", path + b";jsessionid=1"])
    return path


def _segment(route: Route, converter: str, args: str | None, var: str, rng: random.Random, ctx: Context) -> bytes:
    seed = ctx.seed
    roll = rng.random()
    if converter == "int":
        pool = {"account_id": seed.account_ids, "device_id": seed.device_ids, "token_id": seed.token_ids}.get(var, [])
        if roll < 0.6 and pool:
            return str(rng.choice(pool)).encode()
        if roll < 0.9:
            return str(rng.choice(v.INTEGERS + [2**31 + 7, 2**62, 9_223_372_036_854_775_806])).lstrip("-").encode()
        return rng.choice([b"\xd9\xa1\xd9\xa2", b"%D9%A1", b"00001", b"1e3", b"-1", b"0x1", b"1.0", b"%31",
                           v.BIG_DIGITS.encode(), b"%00", b"1%00"])
    if converter == "any":
        choices = [c.strip().strip("'\"") for c in (args or "").split(",")]
        if roll < 0.85:
            return rng.choice(choices).encode()
    plausible = {
        "client_id": seed.client_ids, "sp_service_id": seed.agency_ids, "binding_id": seed.binding_ids,
        "token": seed.login_tokens if "/m/login/" in route.rule else seed.binding_tokens,
        "public_id": seed.login_ids, "code": ["zh_Hant_TW", "en", "zh-TW", "EN"],
        "filename": ["css/app.css", "js/app.js", "js/login.js", "../../config.py", "css/../../wsgi.py"],
        "encoded": ["MAMCAQA=", "MAMCAQA", "MEIwQDA-MDwwOjAJBgUrDgMCGgUABBQ"],
    }.get(var, [])
    if roll < 0.55 and plausible:
        value = rng.choice(plausible)
        if rng.random() < 0.15:  # a real value, bent
            value = rng.choice([value + "x", value[:-1], value.upper(), value + "\x00", value + "\ud800", value * 3])
        return v.percent(value, rng, safe="/" if converter == "path" else "")
    if roll < 0.8:
        return v.percent(rng.choice(v.TEXTS) or "x", rng, safe="")
    return rng.choice(v.RAW_SEGMENTS)


# -- the query string ------------------------------------------------------------------------------------


def _code_challenge(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(str(rng.random()).encode()).digest()).rstrip(b"=").decode()


def _plausible_query(route: Route, rng: random.Random, ctx: Context) -> dict[str, str] | None:
    seed = ctx.seed
    if route.rule in ("/authorize", "/authorize/login"):
        scope = rng.choice(["openid", "openid profile email", "openid national_id", "openid offline_access"])
        params = {"response_type": "code", "client_id": rng.choice(seed.client_ids),
                  "redirect_uri": "https://rp.example/cb", "scope": scope,
                  "state": "s" + str(rng.randint(0, 999)), "nonce": "n" + str(rng.randint(0, 999)),
                  "code_challenge": _code_challenge(rng), "code_challenge_method": "S256"}
        for extra, choices in (("prompt", ["none", "login", "consent", "select_account"]),
                               ("max_age", ["0", "60", "²"]), ("ui_locales", ["en", "zh-TW"])):
            if rng.random() < 0.2:
                params[extra] = rng.choice(choices)
        return params
    if route.rule == "/oidc/logout":
        return {"client_id": rng.choice(seed.client_ids), "post_logout_redirect_uri": "https://rp.example/bye",
                "state": "x", "id_token_hint": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}
    if route.rule.startswith(("/api/v1/admin/audit", "/admin/audit")):
        name = rng.choice(["site", "device", "account", "tag", "client", "before", "q", "actor", "page"])
        return {name: rng.choice(["1", str(rng.choice(seed.device_ids or [1])), rng.choice(seed.client_ids),
                                  "card:login:success"])}
    if route.rule in ("/api/v1/admin/accounts", "/admin"):
        return {"q": rng.choice(["王", "A123456789", "wang@example.com", "0912345678"]),
                "by": rng.choice(["name", "national_id", "email", "phone"])}
    if route.rule in ("/login", "/register", "/lang/<code>"):
        return {"next": rng.choice(["/account", "/authorize?client_id=x", "//evil.example", "/\\evil"])}
    return None


def _query(route: Route, rng: random.Random, ctx: Context, notes: list[str]) -> bytes:
    roll = rng.random()
    plausible = _plausible_query(route, rng, ctx)
    if plausible is not None and roll < 0.6:
        params = list(plausible.items())
        notes.append("query:plausible")
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            params = _mutate_params(params, rng, ctx)
    elif roll < 0.75:
        return b""
    else:
        notes.append("query:random")
        params = [(rng.choice(ctx.names), v.text(v.hostile_json_value(rng))) for _ in range(rng.randint(1, 6))]
    query = b"&".join(v.percent(k, rng) + b"=" + v.percent(val, rng) for k, val in params)
    if rng.random() < 0.05:
        query += rng.choice([b"&", b"&&=&", b"&=x", b"&%zz=%zz", b"&a", b"&a[]=1&a[]=2", b"&" + b"x=1&" * 2000])
    return b"?" + query


def _mutate_params(params: list[tuple[str, str]], rng: random.Random, ctx: Context) -> list[tuple[str, str]]:
    if not params:
        return [(rng.choice(ctx.names), rng.choice(v.TEXTS))]
    index = rng.randrange(len(params))
    name, value = params[index]
    roll = rng.random()
    if roll < 0.55:
        params[index] = (name, v.text(v.hostile_json_value(rng)))
    elif roll < 0.7:
        del params[index]
    elif roll < 0.85:
        params.append((name, rng.choice(v.TEXTS)))  # the same name twice
    else:
        params.append((rng.choice(ctx.names), rng.choice(v.TEXTS)))
    return params


# -- the body ----------------------------------------------------------------------------------------------


def _plausible_body(route: Route, rng: random.Random, ctx: Context, notes: list[str]) -> dict | None:
    seed, endpoint = ctx.seed, route.endpoint
    if endpoint == "auth.card_login_complete":
        login_id, tbs = ctx.fresh_card_login()
        bent = rng.random() < 0.5 and ctx.bad_certificates
        # PKCS#1 answers carry the certificate beside the signature (certb64): there a bent one is read.
        answer = ctx.signed_answer(rng.randrange(8), tbs, "PKCS1" if bent or rng.random() < 0.3 else "PKCS7")
        if bent:
            structural = ctx.bad_certificates[:8]  # the re-encoded ones, then truncations and bit flips
            pool = structural if rng.random() < 0.7 else ctx.bad_certificates
            answer["certb64"] = base64.b64encode(rng.choice(pool)).decode()
            notes.append("card:bent-certificate")
        return {"login_id": login_id, **answer}
    if endpoint == "phone.phone_bind_complete":
        token, credential = ctx.fresh_binding_credential()
        notes.append(f"fresh-binding:{token}")
        return {"credential": credential or {}, "device_name": rng.choice(["手機", "x", "\ud800", "a\x00b", "A" * 300])}
    simple = {
        "account.register": {"national_id": "A123456789", "email": "x@example.com", "phone": "0912345678"},
        "account.verify_email": {"code": f"{rng.randint(0, 999999):06d}"},
        "devices.create_binding": {},
        "devices.rename_device": {"name": "新手機"},
        "devices.unbind_device": {},
        "devices.renew_device": {},
        "admin_api.lock_account": {"reason": "fuzz"},
        "admin_api.unlock_account": {"reason": "fuzz"},
        "admin_api.set_role": {"role": rng.choice(["auditor", "admin", "user"]), "reason": "fuzz"},
        "admin_api.search_accounts": {"q": "A123456789", "by": rng.choice(["national_id", "email", "phone", "name"])},
        "admin_api.create_client": {"name": "RP", "redirect_uris": ["https://rp2.example/cb"], "scopes": ["openid"]},
        "admin_api.update_client": {"name": "RP 2", "redirect_uris": ["https://rp.example/cb"]},
        "admin_api.client_action": {"reason": "fuzz"},
        "admin_api.add_agency": {"name": "機關", "allowed_ips": ["203.0.113.0/24"],
                                 "callback_url": "https://sp.example/cb", "reason": "fuzz"},
        "admin_api.agency_action": {"reason": "fuzz"},
        "admin_api.device_action": {"reason": "fuzz"},
        "admin_api.create_service_token": {"name": "t", "scopes": ["read"], "expires_in_days": 30},
        "admin_api.revoke_service_token": {"reason": "fuzz"},
        "oidc_login.create_login_request": {"authorize": ctx.authorize_query},
        "phone.phone_bind_options": {},
        "oidc_phone_login.phone_login_options": {},
    }
    return dict(simple[endpoint]) if endpoint in simple else None


def _plausible_form(route: Route, rng: random.Random, ctx: Context) -> dict | None:
    seed, endpoint = ctx.seed, route.endpoint
    if endpoint == "oidc.token":
        return {"grant_type": rng.choice(["authorization_code", "refresh_token", "client_credentials", "password"]),
                "code": "c" * 43, "redirect_uri": "https://rp.example/cb", "client_id": rng.choice(seed.client_ids),
                "client_secret": seed.client_secret, "code_verifier": "v" * 43, "refresh_token": "r" * 43}
    if endpoint == "oidc.revoke":
        return {"token": "t" * 43, "token_type_hint": rng.choice(["access_token", "refresh_token", "x"]),
                "client_id": rng.choice(seed.client_ids), "client_secret": seed.client_secret}
    if endpoint == "oidc.userinfo":
        return {"access_token": "a" * 43}
    if endpoint.startswith("admin_console.") or endpoint in ("oidc.authorize", "oidc.logout_confirmed"):
        return {"reason": "fuzz", "decision": rng.choice(["approve", "deny"]), "role": "auditor", "name": "RP",
                "redirect_uris": "https://rp.example/cb", "q": "A123456789", "national_id": "A123456789",
                "scopes": "read", "expires_in_days": "30", "allowed_ips": "203.0.113.0/24",
                "callback_url": "https://sp.example/cb"}
    return None


def _mutate(body: dict, rng: random.Random, ctx: Context) -> dict:
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        roll = rng.random()
        keys = list(body)
        if roll < 0.6 and keys:
            body[rng.choice(keys)] = v.hostile_json_value(rng)
        elif roll < 0.75 and keys:
            del body[rng.choice(keys)]
        elif roll < 0.9:
            body[rng.choice(ctx.names)] = v.hostile_json_value(rng)
        elif keys:  # one level down: a real structure with a hostile leaf
            key = rng.choice(keys)
            if isinstance(body[key], dict) and body[key]:
                inner = dict(body[key])
                inner[rng.choice(list(inner))] = v.hostile_json_value(rng)
                body[key] = inner
    return body


def _body(route: Route, rng: random.Random, ctx: Context, notes: list[str]) -> tuple[bytes, bytes | None]:
    if route.method == "GET" and rng.random() < 0.9:
        return b"", None
    roll = rng.random()
    json_type = b"application/json"
    if roll < 0.45:
        body = _plausible_body(route, rng, ctx, notes) if rng.random() < 0.8 else None
        if body is None:
            body = {rng.choice(ctx.names): v.hostile_json_value(rng) for _ in range(rng.randint(0, 5))}
            notes.append("json:random")
        else:
            notes.append("json:plausible")
        if "card:bent-certificate" not in notes:  # a bent certificate is mutation enough
            body = _mutate(body, rng, ctx)
        return v.dumps(body).encode(), json_type
    if roll < 0.55:
        notes.append("json:hostile-top")
        return v.dumps(v.hostile_json_value(rng)).encode(), json_type
    if roll < 0.62:
        notes.append("json:deep")
        return v.deep(rng).encode(), json_type
    if roll < 0.72:
        notes.append("json:malformed")
        return rng.choice(v.BAD_JSON), json_type
    if roll < 0.87:
        form = _plausible_form(route, rng, ctx) or {}
        if not form or rng.random() < 0.3:
            form.update({rng.choice(ctx.names): v.text(v.hostile_json_value(rng)) for _ in range(rng.randint(1, 4))})
        pairs = _mutate_params([(k, str(val)) for k, val in form.items()], rng, ctx)
        if rng.random() < 0.8:  # the console's forms carry their token in a field
            pairs.append(("csrf_token", "{csrf}"))
        notes.append("form")
        return b"&".join(v.percent(k, rng) + b"=" + v.percent(val, rng) for k, val in pairs), \
            b"application/x-www-form-urlencoded"
    if roll < 0.92:
        notes.append("multipart")
        name = rng.choice(ctx.names).encode()
        value = v.percent(rng.choice(v.TEXTS), rng) if rng.random() < 0.5 else rng.choice(v.BAD_JSON)
        body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"" + name + b"\"; filename=\"../x\x00.txt\"\r\n"
                b"Content-Type: application/json\r\n\r\n" + value + b"\r\n--b0undary--\r\n")
        return body[: rng.choice([len(body), len(body) // 2])], b"multipart/form-data; boundary=b0undary"
    if roll < 0.96:
        notes.append("empty")
        return b"", rng.choice([json_type, None])
    notes.append("binary")
    return rng.randbytes(rng.choice([1, 16, 300, 3000])), rng.choice([b"application/ocsp-request", json_type, None])


# -- the headers ---------------------------------------------------------------------------------------------


def _headers(route: Route, rng: random.Random, ctx: Context, me: Identity, request: Request, notes: list[str]) -> None:
    headers = request.headers
    csrf = me.csrf
    roll = rng.random()
    if roll < 0.04:
        csrf = rng.choice(["garbage", "", "\x00", ctx.identities["admin"].csrf + "x", "é" * 50])
        notes.append("csrf:bad")
    elif roll < 0.1:
        csrf = ""
        notes.append("csrf:none")
    if csrf and route.method != "GET":
        headers.append((b"X-CSRF-Token", v.percent(csrf, rng, safe="-._~") if not csrf.isascii() else csrf.encode()))
    token = quote(me.csrf or "x", safe="").encode()
    request.body = request.body.replace(b"%7Bcsrf%7D", token).replace(b"{csrf}", token)
    cookie = me.cookie
    if rng.random() < 0.05:
        notes.append("cookie:hostile")
        cookie = rng.choice([b"mocert_session=garbage", b"mocert_session=" + b"A" * 8000, b"mocert_session=\xff\xfe",
                             cookie + b"; mocert_session=eyJ4Ijoi",
                             b"mocert_session=.eJyrVkrOz0vOLCjJzM9TslIqTi0uzszPUwIAU6QHqQ.x.y",
                             b"=; ==; ;;", cookie + b"; " + cookie, b"mocert_session"])
    if cookie:
        headers.append((b"Cookie", cookie))
    if rng.random() < 0.05:
        host = rng.choice(v.HOSTS)
        headers.insert(0, (b"Host", host))
        notes.append("host:hostile")
    if rng.random() < 0.25:
        headers.append((b"Accept-Language", rng.choice(v.ACCEPT_LANGUAGES)))
    if rng.random() < 0.4:
        headers.append((b"Accept", rng.choice(v.ACCEPTS)))
    wants_auth = (route.endpoint in ("oidc.token", "oidc.revoke", "oidc.userinfo")
                  or route.rule.startswith("/api/v1/admin"))
    if rng.random() < (0.5 if wants_auth else 0.04):
        seed = ctx.seed
        client = rng.choice(seed.client_ids)
        headers.append((b"Authorization", rng.choice([
            b"Basic " + base64.b64encode(f"{client}:{seed.client_secret}".encode()),
            b"Basic " + base64.b64encode(f"{client}:wrong".encode()),
            b"Basic " + base64.b64encode(b"\xff\xfe:\x00"), b"Basic !!!", b"Basic", b"Basic \xe9t\xe9",
            b"Basic " + base64.b64encode(b"nocolon"),
            b"Bearer " + seed.service_token.encode(), b"Bearer " + seed.service_token.encode() + b"x", b"Bearer",
            b"Bearer " + b"a" * 5000, b"Digest x", b"bearer \xe4\xb8\xad", b"Bearer %00",
        ])))
        notes.append("authorization")
    if rng.random() < 0.04:
        headers.append(rng.choice([(b"X-Forwarded-For", b"1.2.3.4, \xff"), (b"X-Forwarded-Host", b"evil.example"),
                                   (b"Origin", b"https://evil.example"), (b"Origin", b"null"), (b"Referer", b"\x00"),
                                   (b"X-Forwarded-Proto", b"gopher"), (b"User-Agent", b"A" * 8000)]))
    if rng.random() < 0.04 and route.method != "GET":
        choice = rng.choice(["longer", "shorter", "zero", "text", "negative", "twice"])
        notes.append(f"content-length:{choice}")
        length = len(request.body)
        if choice == "longer":
            request.content_length = length + rng.choice([1, 10, 10000])
        elif choice == "shorter":
            request.content_length = max(0, length - rng.choice([1, 5]))
        elif choice == "zero":
            request.content_length = 0
        else:
            raw = {"text": [b"abc"], "negative": [b"-1"],
                   "twice": [str(length).encode(), str(length + 1).encode()]}[choice]
            headers.extend((b"Content-Length", value) for value in raw)
    if rng.random() < 0.02:
        headers.append((b"Transfer-Encoding", rng.choice([b"chunked", b"gzip", b"chunked, identity"])))
        request.body = rng.choice([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"ffffffffffffffffff\r\nx", request.body])
        request.content_length = None
        notes.append("transfer-encoding")
    if rng.random() < 0.02:
        headers.append((b"Content-Encoding", rng.choice([b"gzip", b"deflate", b"br"])))
