"""Taiwan national identification numbers (身分證統一編號): format, check digit, masking, keyed hash.

No maintained library validates these, and the rule is a dozen lines, so it lives here.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# The region letter stands for a two-digit number; note I, O, W, X, Y, Z are out of sequence.
_LETTER_VALUES = {
    "A": 10, "B": 11, "C": 12, "D": 13, "E": 14, "F": 15, "G": 16, "H": 17, "I": 34,
    "J": 18, "K": 19, "L": 20, "M": 21, "N": 22, "O": 35, "P": 23, "Q": 24, "R": 25,
    "S": 26, "T": 27, "U": 28, "V": 29, "W": 32, "X": 30, "Y": 31, "Z": 33,
}  # fmt: skip
_WEIGHTS = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1)
# Second character: 1/2 for citizens, 8/9 for the newer resident-certificate numbers.
_FORMAT = re.compile(r"^[A-Z][1289][0-9]{8}$")


class InvalidNationalId(ValueError):
    """Not a national ID: ``reason`` is ``format`` or ``check_digit``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid national ID ({reason})")
        self.reason = reason


def normalize(value: str) -> str:
    """Return the ID upper-cased and stripped, or raise :class:`InvalidNationalId`."""
    candidate = (value or "").strip().upper()
    if not _FORMAT.match(candidate):
        raise InvalidNationalId("format")
    digits = [*divmod(_LETTER_VALUES[candidate[0]], 10), *(int(c) for c in candidate[1:])]
    if sum(w * d for w, d in zip(_WEIGHTS, digits, strict=True)) % 10:
        raise InvalidNationalId("check_digit")
    return candidate


def is_valid(value: str) -> bool:
    try:
        normalize(value)
    except InvalidNationalId:
        return False
    return True


def mask(national_id: str) -> str:
    """``A123456789`` → ``A12****789``: enough for a person to recognise, too little to reuse."""
    return f"{national_id[:3]}****{national_id[-3:]}"


def keyed_hash(national_id: str, key: bytes) -> str:
    """HMAC-SHA256 of the normalised ID, hex. The ID itself is never stored."""
    return hmac.new(key, normalize(national_id).encode("ascii"), hashlib.sha256).hexdigest()
