"""Email addresses and Taiwan mobile numbers, checked by the libraries that know them.

``email-validator`` and ``phonenumbers`` stay behind this module; callers see :class:`InvalidContact`.
"""

from __future__ import annotations

import email_validator
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from .refusals import Refusal


class InvalidContact(Refusal):
    """``invalid_email`` or ``invalid_phone`` (case ``contact``); ``detail`` says what is wrong, in English.

    A :class:`Refusal`, so a form can let it through as it is; ``field`` lets a caller that answers
    otherwise (the console's search) tell which one it was.
    """

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"invalid_{field}", case="contact", detail=detail)
        self.field, self.detail = field, detail


def normalize_email(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidContact("email", "email is required")
    try:
        # No DNS look-up: the confirmation code proves the address works, and tests run offline.
        result = email_validator.validate_email(value.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidContact("email", str(exc)) from exc
    return result.normalized


def normalize_mobile(value: object, region: str = "TW") -> str:
    """A Taiwan mobile number in E.164 (``0912 345 678`` → ``+886912345678``)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidContact("phone", "mobile number is required")
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException as exc:
        raise InvalidContact("phone", "not a phone number") from exc
    if not phonenumbers.is_valid_number(number) or phonenumbers.region_code_for_number(number) != region:
        raise InvalidContact("phone", "not a valid Taiwan phone number")
    if phonenumbers.number_type(number) not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidContact("phone", "not a mobile number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
