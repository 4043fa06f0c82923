"""5xx causes found and fixed in issue 10: should one come back, the report names it as known (a
regression), so that a new cause stands out. A cause is the last line of the server's traceback, or the
route with it."""

from __future__ import annotations

import re

KNOWN = [
    ("audit row with \\u0000 or a lone surrogate breaks PostgreSQL's JSON (->>, the CSV export)",
     r"unsupported Unicode escape sequence|\\u0000 cannot be converted|invalid input syntax for type json", None),
    ("deep JSON (RecursionError)", r"RecursionError", None),
    ("Authlib 'forbidden characters' at /authorize", r"forbidden characters|authlib", r"/authorize"),
    ("32-bit id columns overflowed", r"NumericValueOutOfRange|out of range for type integer|OverflowError|"
                                     r"Python int too large|integer out of range", None),
    ("NUL byte PostgreSQL cannot store", r"NUL|\\x00|0x00|cannot contain NUL", None),
    ("lone surrogate", r"surrogate|UnicodeEncodeError", None),
    ("max_age not a number", r"invalid literal for int", r"/authorize"),
    ("Host header the IDNA codec refuses (label over 63 characters, bad punycode)",
     r"label too long|label empty or too long|idna|punycode|BadHost", None),
    ("a 4,400-digit number", r"Exceeds the limit \(4300 digits\)|int_max_str_digits", None),
    ("admin role as a list", r"unhashable type", r"/role"),
    ("odd card certificate", r"ValueError|ParseError|UnsupportedAlgorithm|asn1|x509|KeyError|TypeError|IndexError",
     r"/api/v1/card-login/complete"),
    ("database down", r"OperationalError.*(connect|terminat)", None),
]


def classify(cause: str, route_key: str) -> str:
    for label, cause_pattern, route_pattern in KNOWN:
        if re.search(cause_pattern, cause) and (route_pattern is None or re.search(route_pattern, route_key)):
            return f"known: {label}"
    return "NEW"
