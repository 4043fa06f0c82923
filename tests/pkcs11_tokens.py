"""Demo cards as PKCS#11 tokens in SoftHSM2 (Debian's softhsm2), written with OpenSC's pkcs11-tool.

SoftHSM reads its configuration (``SOFTHSM2_CONF``: where the tokens live) once, at C_Initialize, and a
process initializes a module once: so a process sees one token directory. :meth:`SoftHsm.tokens` makes a
directory of tokens and the configuration naming it; the test process gets one for the session
(``tests/card_stack.py``), an agent started as a subprocess gets the configuration it is given.

Each card is a token labelled with its card number, user PIN the demo PIN, holding what a citizen card
holds: the signing key and certificate (CKA_ID 01), the encryption key and certificate (02), and the issuing
CA's certificate (03, no key). SoftHSM makes up the token's serial number; the label carries the card number.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from iccard.demo_pki import DemoCard, DemoPKI

SOFTHSM_MODULE_GLOBS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/*/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "12345678"
SIGNING_ID, ENCRYPTION_ID, CA_ID = "01", "02", "03"


def find_softhsm() -> Path | None:
    configured = os.environ.get("MOCERT_SOFTHSM_MODULE")
    candidates = [configured] if configured else [p for g in SOFTHSM_MODULE_GLOBS for p in sorted(glob.glob(g))]
    return next((Path(p) for p in candidates if p and os.path.isfile(p)), None)


class SoftHsm:
    """SoftHSM token directories holding demo cards, under ``root``."""

    def __init__(self, module: Path, root: Path, pki: DemoPKI) -> None:
        self.module, self.root, self.pki = module, root, pki
        self._made = 0

    def tokens(self, cards: list[DemoCard]) -> Path:
        """A new token directory with one token per card; returns the SOFTHSM2_CONF file naming it."""
        self._made += 1
        directory = self.root / f"tokens-{self._made}"
        directory.mkdir(parents=True)
        config = self.root / f"softhsm2-{self._made}.conf"
        config.write_text(
            f"directories.tokendir = {directory}\nobjectstore.backend = file\nlog.level = ERROR\n"
            "slots.removable = false\n"
        )
        env = self.env(config)
        for card in cards:
            _run(["softhsm2-util", "--init-token", "--free", "--label", card.card_number,
                  "--so-pin", SO_PIN, "--pin", card.pin], env)
            self._write(card, env)
        return config

    def env(self, config: Path) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(config)}

    def _write(self, card: DemoCard, env: dict[str, str]) -> None:
        files = self.root / "objects" / card.card_number
        if not files.is_dir():
            files.mkdir(parents=True)
            key, certificate = self.pki.card_key(card), self.pki.card_certificate(card)
            _der_files(files / "sign", key, certificate)
            _der_files(files / "keyx", self.pki.card_encryption_key(card), self.pki.card_encryption_certificate(card))
            (files / "ca.cert.der").write_bytes(self.pki.issuer_certificate.public_bytes(serialization.Encoding.DER))
        tool = ["pkcs11-tool", "--module", str(self.module), "--token-label", card.card_number, "--login",
                "--pin", card.pin]
        for name, object_id, label in (("sign", SIGNING_ID, "SIGN"), ("keyx", ENCRYPTION_ID, "KEYX")):
            for kind in ("privkey", "pubkey", "cert"):
                _run([*tool, "--write-object", str(files / f"{name}.{kind}.der"), "--type", kind,
                      "--id", object_id, "--label", label], env)
        _run([*tool, "--write-object", str(files / "ca.cert.der"), "--type", "cert", "--id", CA_ID,
              "--label", "CACert"], env)


def _der_files(stem: Path, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
    stem.with_suffix(".privkey.der").write_bytes(
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    stem.with_suffix(".pubkey.der").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    stem.with_suffix(".cert.der").write_bytes(certificate.public_bytes(serialization.Encoding.DER))


def _run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def tools_missing() -> list[str]:
    return [tool for tool in ("softhsm2-util", "pkcs11-tool") if shutil.which(tool) is None]


def open_sessions(module: str, handles: range) -> list[int]:
    """Which of ``handles`` name a session still open in the module loaded (python-pkcs11) in this process.

    C_GetSessionInfo on each, through the module's function list: python-pkcs11 offers no way to ask about a
    session it lost. SoftHSM numbers sessions from a counter, so the handles between two sessions opened one
    after the other are every session opened in between."""
    import ctypes

    names = ("C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList", "C_GetSlotInfo",
             "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken", "C_InitPIN", "C_SetPIN",
             "C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo")

    class FunctionList(ctypes.Structure):
        _fields_ = [("version", ctypes.c_ubyte * 2), *((name, ctypes.c_void_p) for name in names)]

    class SessionInfo(ctypes.Structure):
        _fields_ = [(name, ctypes.c_ulong) for name in ("slotID", "state", "flags", "ulDeviceError")]

    library = ctypes.CDLL(module, mode=os.RTLD_NOLOAD | ctypes.RTLD_LOCAL)  # the copy already loaded
    functions = ctypes.POINTER(FunctionList)()
    assert library.C_GetFunctionList(ctypes.byref(functions)) == 0
    get_session_info = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(SessionInfo))(
        functions.contents.C_GetSessionInfo)
    info = SessionInfo()
    return [handle for handle in handles if get_session_info(handle, ctypes.byref(info)) == 0]
