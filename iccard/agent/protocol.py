"""The component's answers: field names, function names and return codes, as pages expect them.

Everything here follows what public pages written for the real HiPKI local server read (the research
notes of issue 12): ``ret_code`` is the major code (0 success; the real component's ``0x76…`` values
and their CHT errorcode.js texts), ``last_error`` the minor one (a PKCS#11 ``CKR_*`` value, or the
real component's negative "PIN wrong, N tries left" values), ``message`` the major reason's text and
``message2`` the minor reason's (one e-government page shows ``次原因:`` + ``message2``).
``tries_left``, ``pin_blocked`` and ``site`` are our additions: pages written for the real component
ignore them, MoCert's login page shows them.
"""

from __future__ import annotations

import base64
import json
import platform
import struct
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..certificate import CitizenCertificate
from ..errors import CardError, CertificateNotAccepted, WrongPin

# Our own name for the agent, in the field our own pages read.
VERSION = "MoCert-agent 1.0"


def _server_version(system: str) -> str:
    # Pages gate on serverVersion by *string* comparison against a minimum per operating system
    # (1.3.4.103328 on Windows, 1.3.4.13 on macOS, 1.3.4.3 on Linux in the pages seen): answer at or above
    # each, in that platform's own numbering, or a Linux page would compare "1.3.4.103…" < "1.3.4.3".
    return {"Windows": "1.3.4.103340", "Darwin": "1.3.4.19"}.get(system, "1.3.4.9")


SERVER_VERSION = _server_version(platform.system())

# -- major codes (ret_code), the real component's ------------------------------------------------------
OK = 0
NO_CIPHER = 0x76000004  # 未輸入密文
NO_CARD = 0x76000006  # 未插入IC卡
JSON_ERROR = 0x7600000B  # JSON格式錯誤
BAD_PARAMETER = 0x7600000C  # 參數錯誤
TIMEOUT = 0x7600000D  # 執行檔錯誤或逾時 (pages also put it in place of an empty image)
UNSUPPORTED_FUNC = 0x7600000E  # 不支援的方法
DOMAIN_FORBIDDEN = 0x7600000F  # 禁止存取的網域 (pages treat it as "not trusted")
SITE_NOT_TRUSTED = 0x76000031  # 在未授權的網坫執行元件
NO_PIN = 0x76000998  # 未輸入PIN碼
CANCELLED = 0x76000999  # 使用者已取消動作
NO_READER = 0x76100003  # 無可用讀卡機
SESSION_FAILED = 0x76100005  # 取得session失敗 (another program holds the card)
LOGIN_FAILED = 0x76100006  # IC卡登入失敗: last_error says why (wrong PIN, tries, locked)
CERTIFICATE_FAILED = 0x76100009  # IC卡取得憑證失敗 (not a card we can read)
CARD_INFO_FAILED = 0x7610000B  # IC卡卡片資訊失敗: any other card fault
KEY_NOT_FOUND = 0x7610000D  # 找不到指定金鑰 (no encryption key on the card)
SIGN_FAILED = 0x76300004  # 簽章執行錯誤
DECRYPT_DER_ERROR = 0x76400001  # 解密DER錯誤
DECRYPT_TYPE_ERROR = 0x76400002  # 解密型態錯誤
DECRYPT_FAILED = 0x76400003  # 解密錯誤
CERT_NOT_YET_VALID = 0x76500001  # 憑證尚未生效
CARD_EXPIRED = 0x76500002  # 憑證已逾期 (1984954370)
BASE64_ERROR = 0x76600002  # Base64解碼錯誤

MESSAGES = {
    OK: "",
    NO_CIPHER: "未輸入密文 No ciphertext given",
    NO_CARD: "未插入IC卡 No card in the reader",
    JSON_ERROR: "JSON格式錯誤 The request is not valid JSON",
    BAD_PARAMETER: "參數錯誤 Bad parameter",
    TIMEOUT: "執行檔錯誤或逾時 Internal error or timeout",
    UNSUPPORTED_FUNC: "不支援的方法 Unsupported function",
    DOMAIN_FORBIDDEN: "禁止存取的網域 Forbidden domain",
    SITE_NOT_TRUSTED: "在未授權的網站執行元件 This site is not trusted by the card component",
    NO_PIN: "未輸入PIN碼 No PIN given",
    CANCELLED: "使用者已取消動作 Cancelled by the user",
    NO_READER: "無可用讀卡機 No card reader available",
    SESSION_FAILED: "取得session失敗 The card is in use by another program",
    LOGIN_FAILED: "IC卡登入失敗 Card login (PIN) failed",
    CERTIFICATE_FAILED: "IC卡取得憑證失敗 Cannot read the card's certificate",
    CARD_INFO_FAILED: "IC卡卡片資訊失敗 The card reported an error",
    KEY_NOT_FOUND: "找不到指定金鑰 The card has no such key",
    SIGN_FAILED: "簽章執行錯誤 Signing failed",
    DECRYPT_DER_ERROR: "解密DER錯誤 The ciphertext is not valid DER",
    DECRYPT_TYPE_ERROR: "解密型態錯誤 Unsupported ciphertext type",
    DECRYPT_FAILED: "解密錯誤 The ciphertext does not decrypt with this card",
    CERT_NOT_YET_VALID: "憑證尚未生效 The certificate is not valid yet",
    CARD_EXPIRED: "憑證已逾期 The card's certificate has expired",
    BASE64_ERROR: "Base64解碼錯誤 Base64 decoding failed",
}

# -- minor codes (last_error) ---------------------------------------------------------------------------
# PKCS#11 return values, as the real component reports them.
CKR_FUNCTION_FAILED = 0x06
CKR_ARGUMENTS_BAD = 0x07
CKR_DEVICE_ERROR = 0x30
CKR_DEVICE_REMOVED = 0x32
CKR_ENCRYPTED_DATA_INVALID = 0x40
CKR_FUNCTION_CANCELED = 0x50
CKR_PIN_INCORRECT = 0xA0  # PIN碼錯誤 (tries unknown)
CKR_PIN_LEN_RANGE = 0xA2  # PIN碼長度錯誤
CKR_PIN_LOCKED = 0xA4  # 已鎖卡 (164)
CKR_TOKEN_NOT_PRESENT = 0xE0
CKR_TOKEN_NOT_RECOGNIZED = 0xE1
# The real component's "wrong PIN, N tries left", which pages compare as signed 32-bit numbers
# (-2147483647, -2147483646; 0xFFFFFFFF80000001 sign-extended in others).
PIN_ONE_TRY_LEFT = -2147483647
PIN_TWO_TRIES_LEFT = -2147483646

MINOR_MESSAGES = {
    0: "",
    CKR_FUNCTION_FAILED: "函式失敗 Function failed",
    CKR_ARGUMENTS_BAD: "參數錯誤 Bad arguments",
    CKR_DEVICE_ERROR: "裝置錯誤 Device error",
    CKR_DEVICE_REMOVED: "卡片已移除 The card was removed",
    CKR_ENCRYPTED_DATA_INVALID: "密文無效 Invalid ciphertext",
    CKR_FUNCTION_CANCELED: "使用者已取消 Cancelled",
    CKR_PIN_INCORRECT: "PIN碼錯誤 Wrong PIN",
    CKR_PIN_LEN_RANGE: "PIN碼長度錯誤 The PIN is 6 to 8 digits",
    CKR_PIN_LOCKED: "已鎖卡 The PIN is locked",
    CKR_TOKEN_NOT_PRESENT: "未插入IC卡 No card in the reader",
    CKR_TOKEN_NOT_RECOGNIZED: "無法辨識的卡片 Not a supported card",
    PIN_ONE_TRY_LEFT: "PIN碼錯誤，剩餘一次機會 Wrong PIN, 1 try left",
    PIN_TWO_TRIES_LEFT: "PIN碼錯誤，剩餘兩次機會 Wrong PIN, 2 tries left",
}

# What each request's answer is called (pages dispatch on the reply's func).
REPLY_FUNCS = {
    "MakeSignature": "sign",
    "GetUserCert": "pkcs11info",
    "CheckEnvir": "pkcs11info",
    "DecryptData": "decrypt",
    "changeUserPINCode": "changeUserPINCode",
}


def reply_func(request_func: object) -> str:
    return REPLY_FUNCS.get(str(request_func or ""), str(request_func or ""))


def failure(func: str, ret_code: int, last_error: int = 0, message: str | None = None, **extra: object) -> dict:
    """A refusal. ``message`` defaults to the major code's text; ``message2`` is always the minor code's."""
    return {
        "func": func,
        "ret_code": ret_code,
        "last_error": last_error,
        "message": message if message is not None else MESSAGES.get(ret_code, ""),
        "message2": MINOR_MESSAGES.get(last_error, ""),
        "version": VERSION,
        "serverVersion": SERVER_VERSION,
        **extra,
    }


def wrong_pin_code(tries_left: int | None) -> int:
    """last_error for a wrong PIN: the real component's "N tries left" where it has one."""
    if tries_left == 1:
        return PIN_ONE_TRY_LEFT
    if tries_left == 2:
        return PIN_TWO_TRIES_LEFT
    if tries_left == 0:
        return CKR_PIN_LOCKED
    return CKR_PIN_INCORRECT  # more tries, or the card does not say


# CardError.code → (ret_code, last_error). Codes rather than classes, so a backend's new error (a
# PKCS#11 one, say) maps as soon as it has a code.
_CARD_ERRORS = {
    "no_card": (NO_CARD, CKR_TOKEN_NOT_PRESENT),
    "card_removed": (NO_CARD, CKR_DEVICE_REMOVED),
    "unsupported_card": (CERTIFICATE_FAILED, CKR_TOKEN_NOT_RECOGNIZED),
    "reader_unavailable": (NO_READER, CKR_DEVICE_ERROR),
    "module_unavailable": (NO_READER, CKR_DEVICE_ERROR),  # no card can be read through it: as no reader
    "card_in_use": (SESSION_FAILED, CKR_DEVICE_ERROR),
    "malformed_pin": (LOGIN_FAILED, CKR_PIN_LEN_RANGE),
    "pin_blocked": (LOGIN_FAILED, CKR_PIN_LOCKED),
    "decryption_failed": (DECRYPT_FAILED, CKR_ENCRYPTED_DATA_INVALID),
    "no_encryption_key": (KEY_NOT_FOUND, 0),
}
_CARD_MESSAGES = {
    "reader_unavailable": "無可用讀卡機：無法連線讀卡機服務 (pcscd) The card reader service (pcscd) cannot be reached",
    "module_unavailable": "無可用讀卡機：無法使用 PKCS#11 模組 The PKCS#11 module cannot be used",
    "card_removed": "卡片已移除 The card was removed",
    "unsupported_card": "無法讀取此卡片 Not a supported card",
    "no_encryption_key": "此卡片沒有加密金鑰 The card has no encryption key",
}


def card_failure(func: str, error: CardError) -> dict:
    """The answer for a card error, with the codes a page written for the real component acts on."""
    if isinstance(error, WrongPin):
        tries = error.tries_left
        if tries == 0:
            return failure(func, LOGIN_FAILED, CKR_PIN_LOCKED, pin_blocked=True, tries_left=0)
        return failure(func, LOGIN_FAILED, wrong_pin_code(tries), tries_left=tries)
    ret_code, last_error = _CARD_ERRORS.get(getattr(error, "code", ""), (CARD_INFO_FAILED, CKR_DEVICE_ERROR))
    extra: dict = {"pin_blocked": True, "tries_left": 0} if last_error == CKR_PIN_LOCKED else {}
    return failure(func, ret_code, last_error, _CARD_MESSAGES.get(getattr(error, "code", "")), **extra)


def success(func: str, **fields: object) -> dict:
    return {"func": func, "ret_code": OK, "last_error": 0, "message": "", "message2": "",
            "version": VERSION, "serverVersion": SERVER_VERSION, **fields}


def sign_response(signature: bytes, certificate: x509.Certificate, card_number: str) -> dict:
    return success(
        "sign",
        signature=base64.b64encode(signature).decode(),
        certb64=base64.b64encode(certificate.public_bytes(Encoding.DER)).decode(),
        # Pages compare cardSN with the slot's token.serialNumber: the same value.
        cardSN=card_number,
    )


# -- certificate entries of pkcs11info ---------------------------------------------------------------

# One usage word per certificate, by its role on the card, exactly as pages compare it (==, indexOf, regex):
# not read from the KeyUsage extension, since CA certificates often carry digitalSignature too, and a
# page looking for "digitalSignature" must find the card holder's signing certificate, not its CA.
SIGNING_USAGE = "digitalSignature"
ENCRYPTION_USAGE = "keyEncipherment|dataEncipherment"
# A CA entry: no page reads it, but some call .usage.indexOf() on every entry (one vendor version that
# left it out broke them), so it is there, and matches neither word above.
CA_USAGE = "keyCertSign|cRLSign"

SIGNING_LABEL = "cert1"
ENCRYPTION_LABEL = "cert2"


def certificate_entries(
    signing: x509.Certificate, encryption: x509.Certificate | None, cas: list[x509.Certificate]
) -> list[dict]:
    """The token's certs[]: signing (cert1), encryption (cert2), then the CA certificates on the card."""
    entries = [certificate_entry(SIGNING_LABEL, signing, SIGNING_USAGE)]
    if encryption is not None:
        entries.append(certificate_entry(ENCRYPTION_LABEL, encryption, ENCRYPTION_USAGE))
    for ca in cas:
        root = ca.subject == ca.issuer
        entries.append(certificate_entry("ROOT CA Cert" if root else "CA Cert", ca, CA_USAGE))
    return entries


def certificate_entry(label: str, certificate: x509.Certificate, usage: str) -> dict:
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {
        "label": label,
        "certb64": base64.b64encode(certificate.public_bytes(Encoding.DER)).decode(),
        "subjectDN": distinguished_name(certificate.subject),
        "issuerDN": distinguished_name(certificate.issuer),
        # Hex, as the real one; its letter case is not known (pages pass it on to their servers).
        "sn": f"{certificate.serial_number:x}",
        "usage": usage,
        # Unix seconds: pages do new Date(notAfterT*1000).
        "notBeforeT": _timestamp(certificate.not_valid_before_utc),
        "notAfterT": _timestamp(certificate.not_valid_after_utc),
        "subjectCN": str(common_names[0].value) if common_names else "",
        "subjectID": _subject_id(certificate),
    }


# Short names as in the real component's DNs; serialNumber spelt so (RFC 4514 has no short name for it).
_DN_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.EMAIL_ADDRESS: "E",
}


def distinguished_name(name: x509.Name) -> str:
    """``C=TW,CN=王小明,serialNumber=0000000000000001``: the certificate's order, no spaces.

    Pages split it on "," and "=" and take the last part as serialNumber, so it is neither reversed (as
    RFC 4514 would) nor escaped (MOICA's names hold no commas).
    """
    parts = []
    for attribute in name:
        key = _DN_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        parts.append(f"{key}={attribute.value}")
    return ",".join(parts)


def _subject_id(certificate: x509.Certificate) -> str:
    # What the real component puts here is not known; pages only copy it as the owner's ID. MOICA
    # certificates carry the national ID's last four digits at most: those, or "".
    try:
        return CitizenCertificate.from_certificate(certificate).id_last4 or ""
    except CertificateNotAccepted:
        return ""


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


# -- /p11Image.bmp --------------------------------------------------------------------------------------

IMAGE_WIDTH = 2000  # pixels, one row: pages draw it on a 2000×1 canvas
_IMAGE_BYTES = IMAGE_WIDTH * 3


class ImageTooLarge(ValueError):
    pass


def json_bitmap(answer: dict) -> bytes:
    """``answer`` as JSON in a 24-bit 2000×1 BMP's pixels, the way pages decode it.

    Pages read pixel after pixel and append ``String.fromCharCode(B, G, R)`` until a pixel's B is 0: the
    JSON is the pixel bytes in file order. It is pure ASCII (\\u escapes), since pages turn each byte into
    one character; padded with spaces to whole pixels, since a NUL in the last pixel would reach
    JSON.parse; then an all-zero pixel ends it. The header is the real component's (a captured one).
    Raises :class:`ImageTooLarge` when the JSON does not fit in 5997 bytes.
    """
    text = json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    text += b" " * (-len(text) % 3)
    if len(text) > _IMAGE_BYTES - 3:
        raise ImageTooLarge(f"{len(text)} bytes of JSON do not fit in the image")
    pixels = text + bytes(_IMAGE_BYTES - len(text))
    header = b"BM" + struct.pack("<IHHI", 54 + _IMAGE_BYTES, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, IMAGE_WIDTH, 1, 1, 24, 0, _IMAGE_BYTES, 0, 0, 0, 0)
    return header + info + pixels
