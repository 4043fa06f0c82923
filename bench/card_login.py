"""Card logins verified per second, in process, with the OCSP answers cached: ``python bench/card_login.py``.

What is timed is the server's whole check of one ``MakeSignature`` answer, as ``app/services/card_login.py``
makes it: :meth:`CardLoginVerifier.read` (the answer's shape, the certificate, its configured issuer) then
:meth:`CardLoginVerifier.verify` (the signature over the challenge, the path to a trust anchor, the policy,
revocation). No database and no HTTP: a login's other costs are the other benchmarks'.

Each round runs in a fresh process of its own: one login warms the revocation cache (the one request to the
responders), then ``--count`` logins are timed, each over a challenge text of its own (a pool of signatures made
beforehand: signing is the card's work, not the server's). The responders count what they are asked, and a
round that asked them anything while timed says so: "OCSP cached" is checked, not assumed.

Two PKIs (``--profile``): ``demo`` (the demo root, its issuing CA, a card; the CA names no revocation of its
own) and ``moica`` (GRCA G3 -> MOICA G3, RSA-4096, as real cards chain; MOICA's own status is asked of GRCA's
responder, so two answers come from the cache per login).

``--before TREE`` times, beside this checkout's code, the code of another checkout of the project (for
instance ``git worktree add /tmp/before <commit>``), in interleaved rounds, and prints both rates and their
ratio. The PKI and its responders are this process's, the same for both.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
PROFILES = ("demo", "moica")
CARDS = {"demo": "TEST000000000001", "moica": "MOIC000000000003"}  # a valid card of each (G3 for moica)
POOL = 32  # challenges signed beforehand, used in turn


# -- the parent: the PKI, its responders, the rounds ---------------------------------------------------


class Responders:
    """The demo PKI's and the MOICA profile's OCSP responders and CRLs over HTTP on 127.0.0.1, as the
    development server serves them (``/pki/demo/...``); ``GET /asked`` tells how many answers were served."""

    def __init__(self) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args, **kwargs) -> None:  # a line per answer would drown the results
                pass

        self.asked = 0
        self.demo = self.moica = None
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if path == "/asked":
            return _answer(start_response, "200 OK", "text/plain", str(self.asked).encode())
        with self._lock:
            self.asked += 1
        if path == "/pki/demo/ocsp":
            return _answer(start_response, "200 OK", "application/ocsp-response", self.demo.ocsp_response(body))
        if path == "/pki/demo/issuer.crl":
            return _answer(start_response, "200 OK", "application/pkix-crl", self.demo.crl())
        if match := re.fullmatch(r"/pki/demo/moica-profile/(grca|moica)/ocsp", path):
            answer = self.moica.ocsp_response(match[1], body)
            return _answer(start_response, "200 OK", "application/ocsp-response", answer)
        if match := re.fullmatch(r"/pki/demo/moica-profile/((?:GRCA|MOICA)-G[23])\.crl", path):
            return _answer(start_response, "200 OK", "application/pkix-crl", self.moica.crl(match[1]))
        return _answer(start_response, "404 Not Found", "text/plain", b"")


def _answer(start_response, status: str, kind: str, body: bytes):
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


def make_pkis(directory: Path, responders: Responders, profiles) -> None:
    """The demo PKI (and the MOICA profile beside it, if asked for) under ``directory``, answered by ``responders``."""
    sys.path.insert(0, str(HERE))
    from iccard.demo_pki import DemoPKI, MoicaProfilePKI

    responders.demo = DemoPKI.create(directory, responders.url)
    if "moica" in profiles:
        responders.moica = MoicaProfilePKI.create(MoicaProfilePKI.in_demo_pki(directory).directory, responders.url)


def run_round(tree: Path, profile: str, pki_dir: Path, count: int, url: str) -> dict:
    """One round in a fresh process on ``tree``'s code; what it measured."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree), "--profile", profile,
        "--pki-dir", str(pki_dir), "--count", str(count), "--responders", url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tree, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the round on {tree} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.tree, args.profile, args.pki_dir, args.count, args.responders)))
        return 0
    profiles = args.profile.split(",")
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise SystemExit(f"unknown profile {', '.join(sorted(unknown))}: one of {', '.join(PROFILES)}")
    trees = {"after": HERE}
    if args.before:
        trees = {"before": Path(args.before).resolve(), "after": HERE}
    responders = Responders()
    try:
        with tempfile.TemporaryDirectory(prefix="mocert-bench-card-") as tmp:
            make_pkis(Path(tmp) / "demo-pki", responders, profiles)
            print(f"card login (OCSP cached), in process: {args.count} logins a round, {args.rounds} rounds")
            for name, tree in trees.items():
                print(f"  {name}: {tree} ({_commit(tree)})")
            for profile in profiles:
                report(profile, trees, args, Path(tmp) / "demo-pki", responders.url)
    finally:
        responders.stop()
    return 0


def report(profile: str, trees: dict[str, Path], args, pki_dir: Path, url: str) -> None:
    rates: dict[str, list[float]] = {name: [] for name in trees}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    for index in range(args.rounds):
        # Interleaved, the order turned each round: the machine's other load falls on both alike.
        order = list(trees) if index % 2 == 0 else list(reversed(trees))
        line = []
        for name in order:
            result = run_round(trees[name], profile, pki_dir, args.count, url)
            if result["asked_while_timed"]:
                raise SystemExit(f"{name}: the responders were asked {result['asked_while_timed']} times while timed")
            rates[name].append(result["rate"])
            cpu[name].append(result["cpu_ms"])
            line.append(f"{name} {result['rate']:7.1f}/s ({result['cpu_ms']:.2f} ms CPU)")
        print(f"  {profile:5} round {index + 1}: " + "   ".join(line), flush=True)
    for name in trees:
        print(
            f"  {profile:5} {name:6}: median {statistics.median(rates[name]):7.1f} logins/s, "
            f"{statistics.median(cpu[name]):.2f} ms CPU a login"
        )
    if "before" in trees:
        ratio = statistics.median(rates["after"]) / statistics.median(rates["before"])
        cpu_ratio = statistics.median(cpu["before"]) / statistics.median(cpu["after"])
        print(
            f"  {profile:5} card login (OCSP cached): {ratio:.2f}x the rate before, side by side "
            f"({cpu_ratio:.2f}x less CPU a login)"
        )


def _commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    state = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False)
    return (done.stdout.strip()[:60] or "not a git checkout") + (" + uncommitted changes" if state.stdout.strip() else "")


# -- the child: one round, on one tree's code -------------------------------------------------------


def measure(tree: Path, profile: str, pki_dir: Path, count: int, responders: str) -> dict:
    """Warm the revocation cache with one login, then time ``count`` logins on ``tree``'s code."""
    # The code measured is the tree's: its iccard, and its tests.support to sign as the component does.
    sys.path.insert(0, str(Path(tree).resolve()))
    import requests
    from cryptography.hazmat.primitives.serialization import Encoding

    from iccard.card_login import HASH_ALGORITHM, CardLoginVerifier
    from iccard.demo_pki import MOICA_POLICY_OID, DemoPKI, MoicaProfilePKI
    from iccard.validation import CardCertificateValidator, TrustSettings
    from tests.support import make_signature

    if profile == "demo":
        pki = DemoPKI(pki_dir)
        anchors, intermediates = [pki.root_certificate], [pki.issuer_certificate]
    else:
        pki = MoicaProfilePKI.in_demo_pki(pki_dir)
        anchors, intermediates = [pki.certificate("GRCA-G3")], [pki.certificate("MOICA-G3")]
    # The card's key read once (reading an RSA key checks it: tens of milliseconds).
    pki.card_key = functools.cache(pki.card_key)
    settings = TrustSettings(
        anchors=tuple(c.public_bytes(Encoding.DER) for c in anchors),
        intermediates=tuple(c.public_bytes(Encoding.DER) for c in intermediates),
        policy_oids=(MOICA_POLICY_OID,),
        revocation_mode="hard-fail",
        revocation_origins=(responders,),
    )
    verifier = CardLoginVerifier(CardCertificateValidator(settings))
    card = pki.card(CARDS[profile])
    tbs = [f"MoCert login\nsite: http://bench\nnonce: {profile}-{n}" for n in range(POOL)]
    answers = [make_signature(pki, card, text) for text in tbs]

    def login(n: int) -> None:
        verifier.verify(tbs[n % POOL], verifier.read(answers[n % POOL]), HASH_ALGORITHM)

    login(0)  # the one login that asks the responders
    asked = int(requests.get(f"{responders}/asked", timeout=5).text)
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        login(n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    asked_after = int(requests.get(f"{responders}/asked", timeout=5).text)
    return {
        "rate": count / wall,
        "cpu_ms": cpu / count * 1000,
        "count": count,
        "asked_while_timed": asked_after - asked,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="logins timed a round (500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each code (3)")
    parser.add_argument("--profile", default="demo,moica", help="demo, moica, or both (demo,moica)")
    parser.add_argument("--before", help="another checkout of the project whose code to time beside this one's")
    # One round, in the child process.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pki-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--responders", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
