"""What a PIN and a card number look like, one definition for every way a card is read.

A module of its own, importing nothing but :mod:`iccard.errors`, so that :mod:`iccard.piv`,
:mod:`iccard.pkcs11` and the agent can all import it without a cycle (:mod:`iccard.cards` imports
:mod:`iccard.piv`, so it could not hold them for piv).
"""

from __future__ import annotations

import re

from .errors import MalformedPin

# \A and \Z rather than ^ and $: "$" also matches before a final newline, and the agent matches with .match.
PIN_FORMAT = re.compile(r"\A[0-9]{6,8}\Z")
# A card number as printed on the card: 16 characters, two letters first. MOICA's are two letters and 14
# digits (HiCOS reports e.g. TP07240513100000 as the token serial), the demo cards' TEST and 12 digits.
CARD_NUMBER = re.compile(r"\A[A-Z]{2}[A-Z0-9]{2}[0-9]{12}\Z")


def check_pin(pin: object) -> None:
    """Raises :class:`~iccard.errors.MalformedPin` unless ``pin`` is 6 to 8 digits: refused before it reaches
    the card, so a mistyped PIN spends no try."""
    if not isinstance(pin, str) or not PIN_FORMAT.match(pin):
        raise MalformedPin("a PIN is 6 to 8 digits")
