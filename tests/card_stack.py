"""Fixtures for the card side, for every test that needs a card (a pytest plugin: tests/conftest.py loads it):
emulated demo cards in-process, behind the real PC/SC stack, and in PKCS#11 modules (SoftHSM2, OpenSC).

The PC/SC tests need pyscard, pcscd and vsmartcard's vpcd; the OpenSC tests need OpenSC too. Without
them those tests skip, except under CI, where they fail (:func:`tests.support.missing` decides).
pcscd is started if it is not running, and then left running like the service it is: the parallel
workers share it, and one stopping it at the end of its session would pull it from under another.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from iccard.demo_pki import DemoCard, DemoPKI
from iccard.emulator import InProcessReader, PivCardEmulator
from tests.support import card_of, missing

VPCD_PORT = int(os.environ.get("MOCERT_VPCD_PORT", "35963"))
VPCD_CONF = Path(os.environ.get("MOCERT_VPCD_CONF", "/etc/reader.conf.d/vpcd"))
PKCS11_MODULE_GLOBS = (
    "/usr/lib/*/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
    "/usr/lib64/opensc-pkcs11.so",
    "/usr/local/lib/opensc-pkcs11.so",
)
STARTUP_TIMEOUT = 10.0  # pcscd starting, a card showing up or going away
OPENSC_TOOLS = ("opensc-tool", "pkcs15-tool", "pkcs11-tool")
PCSCD_PATHS = ("/usr/sbin/pcscd", "/sbin/pcscd")  # not on PATH for every user
VPCD_LOCK = Path(os.environ.get("MOCERT_VPCD_LOCK", "/tmp/mocert-vpcd.lock"))


# -- in-process ----------------------------------------------------------------------------------------


@pytest.fixture
def demo_card(pki: DemoPKI) -> DemoCard:
    return card_of(pki, "A123456789")


@pytest.fixture
def card_state_dir(tmp_path) -> Path:
    return tmp_path / "card-state"


@pytest.fixture
def emulator(pki, demo_card, card_state_dir) -> PivCardEmulator:
    return PivCardEmulator.from_demo(pki, demo_card, card_state_dir)


@pytest.fixture
def reader(emulator) -> InProcessReader:
    return InProcessReader(emulator)


# -- the PC/SC stack -----------------------------------------------------------------------------------


@dataclass
class PcscStack:
    """pcscd running with vpcd; ``reader_name`` is the PC/SC reader fed from ``port``."""

    port: int
    reader_name: str

    def wait_for_card(self, present: bool, timeout: float = STARTUP_TIMEOUT) -> None:
        from iccard import pcsc

        deadline = time.monotonic() + timeout
        while pcsc.card_present(self.reader_name) != present:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.reader_name}: card still {'absent' if present else 'present'}")
            time.sleep(0.05)


def _vpcd_reader_slot() -> tuple[str, int]:
    """vpcd's reader name prefix and the slot our port feeds, from its pcscd configuration."""
    if not VPCD_CONF.is_file():
        missing(f"vsmartcard's vpcd is not configured ({VPCD_CONF} missing): apt-get install vsmartcard-vpcd")
    settings = {}
    for line in VPCD_CONF.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        settings[key] = value.strip().strip('"')
    base_port = int(settings.get("CHANNELID", "0x8C7B"), 0)
    slot = VPCD_PORT - base_port
    if slot not in (0, 1):
        missing(
            f"MOCERT_VPCD_PORT={VPCD_PORT}, but pcscd's vpcd listens on {base_port} and {base_port + 1} ({VPCD_CONF})"
        )
    return settings.get("FRIENDLYNAME", "Virtual PCD"), slot


def _vpcd_reader(friendly_name: str, slot: int) -> str | None:
    """The name pcscd gives vpcd's reader for ``slot`` (None while pcscd is unreachable or lacks it)."""
    from iccard import pcsc
    from iccard.errors import ReaderUnavailable

    try:
        names = [reader.name for reader in pcsc.list_readers()]
    except ReaderUnavailable:
        return None
    return next((n for n in names if n.startswith(friendly_name) and n.endswith(f" {slot:02d}")), None)


@pytest.fixture(autouse=True)
def _one_test_at_a_time_on_vpcd(request):
    """vpcd's reader listens on one fixed port: a test that uses it holds this machine-wide lock throughout,
    so the parallel workers (and any other run on the machine) take turns rather than feed it two cards."""
    if "pcsc_stack" not in request.fixturenames:
        yield
        return
    with open(VPCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def pcsc_stack():
    """pcscd with vpcd's reader, reachable through pyscard; starts pcscd if it is not running."""
    try:
        import smartcard  # noqa: F401
    except ImportError:
        missing("pyscard is not installed: pip install -r requirements-agent.txt (needs libpcsclite-dev, swig)")
    friendly_name, slot = _vpcd_reader_slot()
    with open(VPCD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two workers must not both start one
        reader_name = _vpcd_reader(friendly_name, slot) or _start_pcscd(friendly_name, slot)
    yield PcscStack(port=VPCD_PORT, reader_name=reader_name)


def _start_pcscd(friendly_name: str, slot: int) -> str:
    """Start pcscd (in the background, for good) and wait for vpcd's reader; returns its name."""
    pcscd = shutil.which("pcscd") or next((p for p in PCSCD_PATHS if os.path.exists(p)), None)
    if pcscd is None:
        missing("pcscd is not installed: apt-get install pcscd")
    if _pcscd_running():
        missing(
            "pcscd runs but shows us no vpcd reader (started before vsmartcard-vpcd was installed, "
            "or unreachable): restart it"
        )
    started = subprocess.Popen(
        [pcscd, "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while (reader_name := _vpcd_reader(friendly_name, slot)) is None:
        if started.poll() is not None or time.monotonic() > deadline:
            _stop(started)
            missing(f"pcscd was started but shows no vpcd reader (exit status {started.returncode})")
        time.sleep(0.1)
    return reader_name


def _pcscd_running() -> bool:
    try:
        return subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0
    except FileNotFoundError:  # no procps: its pid file is the next best witness
        pid_file = Path("/run/pcscd/pcscd.pid")
        return pid_file.is_file() and Path(f"/proc/{pid_file.read_text().strip()}").exists()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def virtual_card(pcsc_stack, emulator):
    """The demo card's emulator inserted in vpcd's reader, seen by pcscd; taken out afterwards."""
    from iccard.vpcd import VirtualCard

    card = VirtualCard(emulator, port=pcsc_stack.port)
    card.start()
    try:
        pcsc_stack.wait_for_card(present=True)
        yield card
    finally:
        card.remove()
        pcsc_stack.wait_for_card(present=False)


@pytest.fixture(scope="session")
def opensc(pcsc_stack) -> Path:
    """OpenSC's tools on PATH; returns the path of its PKCS#11 module."""
    absent = [tool for tool in OPENSC_TOOLS if shutil.which(tool) is None]
    if absent:
        missing(f"OpenSC is not installed ({', '.join(absent)} missing): apt-get install opensc")
    configured = os.environ.get("MOCERT_OPENSC_PKCS11")
    candidates = [configured] if configured else [p for g in PKCS11_MODULE_GLOBS for p in sorted(glob.glob(g))]
    module = next((Path(p) for p in candidates if p and os.path.isfile(p)), None)
    if module is None:
        missing("OpenSC's PKCS#11 module opensc-pkcs11.so was not found (Debian package opensc-pkcs11)")
    return module


# -- PKCS#11: SoftHSM2 tokens, OpenSC's module, the agent over them -------------------------------------


@pytest.fixture(scope="session")
def softhsm_tokens(pki, tmp_path_factory):
    """SoftHSM2 token directories holding demo cards (tests/pkcs11_tokens.py): ``softhsm_tokens.tokens(cards)``
    makes one, ``softhsm_tokens.env(config)`` the environment of an agent started as a process of its own."""
    from tests.pkcs11_tokens import SoftHsm, find_softhsm, tools_missing

    module = find_softhsm()
    if module is None:
        missing("SoftHSM2's PKCS#11 module libsofthsm2.so was not found (Debian package softhsm2)")
    if absent := tools_missing():
        missing(f"{', '.join(absent)} not found (Debian packages softhsm2, opensc)")
    return SoftHsm(module, tmp_path_factory.mktemp("softhsm"), pki)


@pytest.fixture(scope="session")
def softhsm(softhsm_tokens, pki):
    """SoftHSM2 holding every demo card as a token, for this process and its children.

    SOFTHSM2_CONF is set for the whole session before anything loads the module: SoftHSM reads it once, at
    C_Initialize, and a process initializes a module once.
    """
    softhsm_tokens.config = softhsm_tokens.tokens(pki.cards)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(softhsm_tokens.config)
    yield softhsm_tokens
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def pkcs11_agent(tmp_path):
    """``pkcs11_agent(module, env=..., trusted=[...])``: ``python -m iccard.agent --pkcs11 module`` as a process
    of its own, with an empty HOME (no OpenSC file cache from elsewhere); stopped after the test."""
    from tests.agent_process import AgentProcess

    agents = []

    def start(module, *, env=None, trusted=()):
        home = tmp_path / f"agent-home-{len(agents)}"
        home.mkdir()
        agent = AgentProcess(["--pkcs11", str(module)], state_dir=tmp_path / f"agent-state-{len(agents)}",
                             env={**(env or os.environ), "HOME": str(home)}, trusted=tuple(trusted))
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()
