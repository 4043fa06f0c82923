"""An agency's client of the TW FidO service-provider API, written from the contract alone.

Plain HTTP with ``requests``; the checksums and the signed-response check are computed here with
``cryptography`` and hashlib, not with MoCert's ``twfido`` package, so a test that passes through this
client shows that MoCert speaks the published contract, not merely that it agrees with itself.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The contract's field orders, written out again here on purpose (see the module's docstring).
TICKET_FIELDS = ("transaction_id", "sp_service_id", "id_num", "op_code", "op_mode", "hint", "sign_data")
PUSH_FIELDS = ("transaction_id", "sp_service_id", "id_num", "device_user_def_desc", "op_code", "hint", "sign_data")
BATCH_FIELDS = ("transaction_id", "sp_service_id", "id_num", "device_user_def_desc", "op_code", "op_mode", "hint",
                "sign_data")
RESULT_FIELDS = ("transaction_id", "sp_service_id", "sp_ticket_id")
TICKET_ANSWER = ("transaction_id", "error_code", "sp_ticket")
RESULT_ANSWER = ("transaction_id", "error_code", "hashed_id_num", "signed_response")
# SP-API-WEB-01's, which the published documents do not show: MoCert's, as its README gives them.
WEB_FIELDS = ("transaction_id", "sp_service_id", "op_code", "hint", "sign_data")
WEB_ANSWER = ("transaction_id", "error_code", "id_num", "signed_response")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _joined(values: dict, order: tuple[str, ...]) -> str:
    return "".join("" if values.get(name) is None else str(values[name]) for name in order)


def checksum(key: bytes, values: dict, order: tuple[str, ...], iv: bytes | None = None) -> str:
    plain = hashlib.sha256(_joined(values, order).encode()).hexdigest()
    iv = os.urandom(12) if iv is None else iv
    return (iv + AESGCM(key).encrypt(iv, plain.encode(), None)).hex()


def checksum_holds(key: bytes, values: dict, order: tuple[str, ...], sealed: str) -> bool:
    raw = bytes.fromhex(sealed)
    plain = AESGCM(key).decrypt(raw[:12], raw[12:], None)  # raises InvalidTag on a wrong key
    return plain == hashlib.sha256(_joined(values, order).encode()).hexdigest().encode()


def ticket_fields(sp_ticket: str) -> dict:
    body, digest = sp_ticket.split(".")
    assert base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b"=").decode() == digest
    return json.loads(b64url_decode(body))


@dataclass
class Call:
    """One call and its answer: the envelope, and the request body that was sent."""

    sent: dict
    answer: dict
    status: int

    @property
    def code(self) -> str:
        return self.answer["error_code"]

    @property
    def result(self) -> dict:
        return self.answer["result"]


class AgencyClient:
    def __init__(self, base_url: str, sp_service_id: str, api_key: str) -> None:
        self.base_url, self.sp_service_id = base_url, sp_service_id
        self.key = base64.b64decode(api_key)
        self.http = requests.Session()

    def post(self, operation: str, body: dict) -> Call:
        response = self.http.post(f"{self.base_url}/moise/sp/{operation}", json=body, timeout=10)
        return Call(body, response.json(), response.status_code)

    def signed(self, body: dict, order: tuple[str, ...], **overrides) -> dict:
        info = body.get("sign_info") if isinstance(body.get("sign_info"), dict) else {}
        values = {**body, "sign_data": info.get("sign_data")}
        if "sign_data_set" in info:
            values["sign_data"] = "".join(hashlib.sha256(str(item).encode()).hexdigest()
                                          for item in info["sign_data_set"])
        return {**body, "sp_checksum": checksum(self.key, values, order), **overrides}

    def ticket(self, id_num: str, *, op_code="ATH", op_mode="I-SCAN", hint="登入臺灣雲市集", sign_info=None,
               time_limit=120, transaction_id=None, **overrides) -> Call:
        body = {"transaction_id": transaction_id or str(uuid.uuid4()), "sp_service_id": self.sp_service_id,
                "id_num": id_num, "op_code": op_code, "op_mode": op_mode, "hint": hint, "time_limit": time_limit}
        if sign_info is not None:
            body["sign_info"] = sign_info
        return self.post("getSpTicket", self.signed(body, TICKET_FIELDS, **overrides))

    def push(self, id_num: str, *, op_code="ATH", hint="登入臺灣雲市集", device=None, sign_info=None,
             time_limit=120, **overrides) -> Call:
        body = {"transaction_id": str(uuid.uuid4()), "sp_service_id": self.sp_service_id, "id_num": id_num,
                "op_code": op_code, "hint": hint, "time_limit": time_limit}
        if device is not None:
            body["device_user_def_desc"] = device
        if sign_info is not None:
            body["sign_info"] = sign_info
        return self.post("requestAthOrSignPush", self.signed(body, PUSH_FIELDS, **overrides))

    def batch(self, id_num: str, items: list[str], *, op_mode="I-SCAN", hint="簽署文件", device=None,
              **overrides) -> Call:
        body = {"transaction_id": str(uuid.uuid4()), "sp_service_id": self.sp_service_id, "id_num": id_num,
                "op_code": "BATSIGN", "op_mode": op_mode, "hint": hint, "time_limit": 120,
                "sign_info": {"sign_type": "PKCS#1", "sign_data_set": items, "tbs_encoding": "NONE",
                              "hash_algorithm": "SHA256"}}
        if device is not None:
            body["device_user_def_desc"] = device
        return self.post("doBatchSigning", self.signed(body, BATCH_FIELDS, **overrides))

    def result(self, sp_ticket: str, **overrides) -> Call:
        fields = ticket_fields(sp_ticket)
        body = {"transaction_id": fields["transaction_id"], "sp_service_id": self.sp_service_id,
                "sp_ticket_id": fields["sp_ticket_id"]}
        return self.post("getAthOrSignResult", self.signed(body, RESULT_FIELDS, **overrides))

    def device_status(self, id_num: str, **overrides) -> Call:
        body = {"transaction_id": str(uuid.uuid4()), "sp_service_id": self.sp_service_id, "id_num": id_num}
        return self.post("checkDeviceStatus", self.signed(body, ("transaction_id", "sp_service_id", "id_num"),
                                                          **overrides))

    def web_form(self, *, op_code="ATH", hint="登入臺灣雲市集", sign_data=None, sign_type=None, tbs_encoding=None,
                 hash_algorithm=None, time_limit="120", transaction_id=None, **overrides) -> dict[str, str]:
        """SP-API-WEB-01: the fields of the form the agency's page has the person's browser post to MoCert."""
        form = {"transaction_id": transaction_id or str(uuid.uuid4()), "op_code": op_code,
                "sp_service_id": self.sp_service_id, "hint": hint, "time_limit": time_limit}
        for name, value in (("sign_type", sign_type), ("sign_data", sign_data), ("tbs_encoding", tbs_encoding),
                            ("hash_algorithm", hash_algorithm)):
            if value is not None:
                form[name] = value
        return {**form, "sp_checksum": checksum(self.key, form, WEB_FIELDS), **overrides}

    # -- what the agency checks of the answers ---------------------------------------------------------

    def ticket_answer_holds(self, call: Call) -> bool:
        values = {"transaction_id": call.answer["transaction_id"], "error_code": call.code,
                  "sp_ticket": call.result["sp_ticket"]}
        return checksum_holds(self.key, values, TICKET_ANSWER, call.result["idp_checksum"])

    def result_answer_holds(self, call: Call) -> bool:
        values = {"transaction_id": call.answer["transaction_id"], "error_code": call.code,
                  "hashed_id_num": call.result["hashed_id_num"], "signed_response": call.result["signed_response"]}
        return checksum_holds(self.key, values, RESULT_ANSWER, call.result["idp_checksum"])


    def web_answer_holds(self, posted: dict) -> bool:
        """SP-API-WEB-01: the idp_checksum of the form MoCert's page posted to the callback."""
        return checksum_holds(self.key, posted, WEB_ANSWER, posted["idp_checksum"])


class AgencySite:
    """The agency's own site, on 127.0.0.1 (another site than MoCert's localhost): ``/start`` is a page whose
    form (``form``: its action and fields) the person's browser posts to MoCert; ``/cb`` is the callback, which
    records each form posted to it (``received``) and answers a page saying so."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.form: tuple[str, dict] | None = None
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if urlsplit(self.path).path != "/start" or site.form is None:
                    return self._answer(404, "<!doctype html><title>no</title>")
                action, fields = site.form
                inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                                 for k, v in fields.items())
                self._answer(200, f'<!doctype html><html lang="zh-Hant-TW"><title>臺灣雲市集</title>'
                                  f'<form id="to-mocert" method="post" action="{html.escape(action)}">{inputs}'
                                  f'<button id="go">以行動自然人憑證登入</button></form>')

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if urlsplit(self.path).path == "/cb":
                    site.received.append({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
                self._answer(200, '<!doctype html><title>臺灣雲市集</title><p id="agency">已收到 MoCert 的回覆</p>')

            def _answer(self, status, text):
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.callback_url = f"{self.url}/cb"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def challenge_input(request: dict, sp_ticket_id: str) -> str:
    """The contract's challenge_input, rebuilt from what the agency sent (keys sorted, no spaces, UTF-8): a
    JSON request, or SP-API-WEB-01's form (its sign_data flat; an ATH signs none)."""
    info = request.get("sign_info") or {}
    if "sign_data_set" in info:
        sign_data = [hashlib.sha256(item.encode()).hexdigest() for item in info["sign_data_set"]]
    else:
        flat = request.get("sign_data") if request["op_code"] == "SIGN" else None
        sign_data = info.get("sign_data") or flat or ""
    return json.dumps({
        "hint": request.get("hint") or "", "op_code": request["op_code"], "sign_data": sign_data,
        "sp_service_id": request["sp_service_id"], "sp_ticket_id": sp_ticket_id,
        "transaction_id": request["transaction_id"],
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_signed_response(signed_response: str, cert_b64: str, ca: x509.Certificate, expected_input: str,
                          rp_id: str) -> x509.Certificate:
    """The second, independent check of a signed response (cryptography only); raises AssertionError."""
    document = json.loads(b64url_decode(signed_response))
    assert document["format"] == "mocert-webauthn-v1"
    assert document["challenge_input"] == expected_input
    certificate = x509.load_der_x509_certificate(base64.b64decode(cert_b64))
    certificate.verify_directly_issued_by(ca)
    client_data_json = b64url_decode(document["client_data_json"])
    client_data = json.loads(client_data_json)
    assert client_data["type"] == "webauthn.get"
    assert b64url_decode(client_data["challenge"]) == hashlib.sha256(expected_input.encode()).digest()
    authenticator_data = b64url_decode(document["authenticator_data"])
    assert authenticator_data[:32] == hashlib.sha256(rp_id.encode()).digest()
    assert authenticator_data[32] & 0x05 == 0x05  # user present and verified
    signed = authenticator_data + hashlib.sha256(client_data_json).digest()
    signature = b64url_decode(document["signature"])
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(signature, signed)
    return certificate
