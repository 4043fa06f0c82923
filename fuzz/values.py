"""Plausible, boundary and hostile values, and a JSON writer that can say what ``json.dumps`` will not
(4,400-digit numbers, NaN, nesting 30,000 deep, lone surrogates as ``\\udXXX`` escapes)."""

from __future__ import annotations

import base64
import json
import random
from urllib.parse import quote

BIG_DIGITS = "9" * 4400  # past Python's 4,300-digit limit on int(str)

TEXTS = [
    "", " ", "x", "\x00", "a\x00b", "\ud800", "x\udfffy", "\udbff\udfff", "\ufffe", "\uffff", "😀😀", "\u202egnp.exe",
    "²", "١٢٣", "Ⅻ", "ǅ", "\u0301", "A" * 64, "a" * 300, "é" * 3000, "Z" * 20000, "../../../etc/passwd", "..%2f..%2f",
    "<script>alert(1)</script>", "' OR '1'='1", "\"; DROP TABLE accounts;--", "{{7*7}}", "${jndi:ldap://x/a}",
    "%00", "%s%n%x", "\r\nSet-Cookie: x=1", "null", "true", "[]", "{}", "-1", "0", "1e309", "NaN", "-0", BIG_DIGITS,
    "0x10", " 1", "1 ", "+1", "1.5", "²", "A123456789", "a123456789", "Z999999999", "a@b.c", "wang@example.com",
    "é@é.é", "+886912345678", "0912345678", "https://evil.example/cb", "https://rp.example/cb", "javascript:alert(1)",
    "//evil.example", "\\\\evil.example", "/account", "openid", "openid profile email phone offline_access national_id",
    "code", "token", "id_token", "S256", "plain", "none", "login", "consent", "admin", "auditor", "user", "approve",
    "deny", "suspend", "revoke", "lock", "zh_Hant_TW", "en", "read", "clients:write", "agencies:write",
    "client_secret_post", "private_key_jwt", "pairwise", "public", "ES256", "HS256",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    "AAAA", "====", "_-_-", base64.b64encode(b"\x30\x03\x02\x01\x00").decode(),
]
INTEGERS = [0, 1, 2, 3, -1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30]


class Raw(str):
    """JSON text written as it is."""


def hostile_json_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(TEXTS)
    if roll < 0.65:
        return rng.choice(INTEGERS)
    if roll < 0.72:
        return Raw(rng.choice([BIG_DIGITS, "-" + BIG_DIGITS, "1e400", "-1e400", "NaN", "Infinity", "-Infinity",
                               "1.7976931348623157e308", "5e-324", "-0", "0.1e1", "1E+2"]))
    if roll < 0.8:
        return rng.choice([None, True, False, 0.5, -0.0, 1e308])
    if roll < 0.88 or depth > 2:
        return rng.choice([[], {}, [1, 2], ["a"], [None], {"a": 1}, [[[]]]])
    if roll < 0.94:
        return [hostile_json_value(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return deep(rng)


def deep(rng: random.Random) -> Raw:
    """Nesting deep enough to exhaust a recursive parser (but under the 64 KiB request limit)."""
    n = rng.choice([100, 1000, 5000, 30000])
    if rng.random() < 0.5:
        return Raw("[" * n + "]" * n)
    return Raw('{"a":' * (n // 3) + "1" + "}" * (n // 3))


def dumps(value, rng: random.Random | None = None) -> str:
    """JSON of ``value`` where ``Raw`` stays raw; strings escaped as ASCII (so a lone surrogate is \\udXXX)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**4000 else Raw(BIG_DIGITS)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(str(k))}:{dumps(v, rng)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v, rng) for v in value) + "]"
    raise TypeError(type(value))


BAD_JSON = [
    b"{", b"}", b"[", b'{"a":}', b'{"a" 1}', b"{'a': 1}", b'{"a":1,}', b'{"a":1}garbage', b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00", b'{"a":"\xff"}', b'{"name":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}', b"\x00", b"\x00{}",
    b'{"a":1,"a":2}', b'{"a":"\\x41"}', b'{"a":"\\u12"}', b'{"a":"\\ud800"}', b'{"a":"\\u0000"}', b"nul", b"tru",
    b'"\\ud83d"', b"1" * 5000, b"{" + b'"k":1,' * 9000 + b'"k":1}', b"  ", b"\r\n", b"[" * 200,
    '{"a":"\u2028"}'.encode(), b"\xf0\x28\x8c\x28", b'{"a":' + BIG_DIGITS.encode() + b"}",
]


def text(value) -> str:
    """A query or form value from any generated value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return dumps(value)
    return dumps(value)


def percent(value: str, rng: random.Random, safe: str = "") -> bytes:
    """Percent-encode ``value`` (UTF-8; lone surrogates become invalid UTF-8 on purpose), now and then raw."""
    raw = value.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:  # sent unencoded: the server's parser meets the bytes themselves
        return raw.replace(b" ", b"+").replace(b"\r", b"%0D").replace(b"\n", b"%0A").replace(b"#", b"%23")
    return quote(raw, safe=safe).encode()


RAW_SEGMENTS = [b"%zz", b"%", b"%ff", b"%c0%af", b"%ed%a0%80", b"%00", b"a%00b", b"%2e%2e", b"..", b".", b"%2f",
                b"a%2Fb", b"%u0041", b"%E2%80%AE", b"%F0%9F%98%80", b"x" * 4000, b"%25", b"+", b";x=1", b"%0d%0a"]

HOSTS = [b"a" * 64 + b".localhost", b"localhost:99999", b"", b"evil.example", b"[::1]", b"localhost:1:2", b"xn--zz",
         b"ex ample", b"\xc3\xa9.localhost", b"localhost.", b"a." * 130 + b"a", b"-localhost", b"local_host", b"[",
         b"localhost:abc", b"LOCALHOST", b"x" * 300, b"%00", b"localhost@evil.example"]
ACCEPT_LANGUAGES = [b"en", b"zh-TW", b"zh-Hant-TW,zh;q=0.9,en;q=0.8", b"*", b"en;q=abc", b"x" * 5000, b";q=0.5",
                    b"zh-TW;q=2", b"\xff\xfe", b",,,", b"en-US-x-" + b"a" * 100, b"i-klingon", b"zh_Hant_TW",
                    b"en;q=-1", b"en;q=1e400", b"fr, " * 500]
ACCEPTS = [b"application/json", b"text/html", b"*/*", b"text/html;q=0.1, application/json", b"image/png", b"\xff",
           b"application/json;q=abc", b"*/*;q=" + b"9" * 500]
CONTENT_TYPES = [b"application/json; charset=utf-16", b"text/plain", b"application/json; charset=\xff",
                 b"multipart/form-data", b"multipart/form-data; boundary=",
                 b"application/x-www-form-urlencoded; charset=latin-1",
                 b"application/ocsp-request", b"*/*", b"", b"application/json;;;", b"application/vnd.api+json",
                 b"application/jwt", b"application/json; charset=nope", b"text/html"]
