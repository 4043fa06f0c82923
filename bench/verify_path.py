"""The phone login's verify path against the raw ECDSA-P256 verify underneath it, in one process.

A passkey of the software phone (``webauthn.phone``) is registered through ``verify_registration``; one
assertion of it is then verified again and again by ``webauthn.verify_authentication`` as the login calls it
(the relying party's origins, the stored key and counter, the credential id and user handle to match), and
its signature alone by ``cryptography``'s ``EllipticCurvePublicKey.verify`` over the same signed bytes (the
``ECDSA(SHA256())`` made once: the least a verifier must do). Rounds of the two alternate, in turn first,
so that the machine's other work falls on both alike, and are timed in the process's CPU time; each prints
its median, and the ratio is the median of the rounds' own ratios (each from two neighbouring measurements).

    python -m bench.verify_path [--iterations 3000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import TextIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import webauthn
from webauthn.phone.authenticator import SoftwareAuthenticator
from webauthn.phone.browser import PhoneBrowser

RP_ID = "mocert.example"
ORIGIN = "https://mocert.example"
ORIGINS = (ORIGIN,)  # the relying party's origins are a tuple in the app (RelyingParty.origins)
USER_HANDLE = os.urandom(32)


def ceremonies() -> tuple[Callable[[], object], Callable[[], object]]:
    """``(ours, raw)``: two calls of no arguments, each checking the same assertion once."""
    browser = PhoneBrowser(SoftwareAuthenticator(None))
    challenge = os.urandom(32)
    creation = webauthn.registration_options(
        rp_id=RP_ID, rp_name="MoCert", user_id=USER_HANDLE, user_name="bench", user_display_name="bench",
        challenge=challenge,
    )
    registered = webauthn.verify_registration(
        browser.create(creation["publicKey"], origin=ORIGIN), expected_challenge=challenge,
        expected_origin=ORIGINS, expected_rp_id=RP_ID,
    )
    challenge = os.urandom(32)
    request = webauthn.authentication_options(rp_id=RP_ID, challenge=challenge)
    assertion = browser.get(request["publicKey"], origin=ORIGIN)

    def ours() -> webauthn.VerifiedAuthentication:
        return webauthn.verify_authentication(
            assertion,
            expected_challenge=challenge,
            expected_origin=ORIGINS,
            expected_rp_id=RP_ID,
            credential_public_key=registered.public_key,
            current_sign_count=registered.sign_count,
            credential_id=registered.credential_id,
            user_handle=USER_HANDLE,
        )

    verified = ours()  # it verifies (and the stored key's cache is warm, as after a registration)
    assert verified.new_sign_count == registered.sign_count + 1 and verified.user_verified
    key = webauthn.public_key_from_cose(registered.public_key)
    signed = verified.authenticator_data + hashlib.sha256(verified.client_data_json).digest()
    signature, algorithm = verified.signature, ec.ECDSA(hashes.SHA256())

    def raw() -> None:
        key.verify(signature, signed, algorithm)

    raw()
    return ours, raw


def per_second(call: Callable[[], object], iterations: int) -> float:
    """Calls per second of this process's CPU time (timeit: the garbage collector off, for both). CPU
    time, not the wall clock: on a shared machine another process's turn would count against whichever
    of the two was running then."""
    return iterations / timeit.Timer(call, timer=time.process_time).timeit(iterations)


def measure(iterations: int, rounds: int) -> tuple[float, float, float]:
    """Median verifies per second of the raw verify and of ours, and the median of the rounds' ratios."""
    ours, raw = ceremonies()
    raw_rates, our_rates, ratios = [], [], []
    for turn in range(rounds):
        if turn % 2:
            mine, theirs = per_second(ours, iterations), per_second(raw, iterations)
        else:
            theirs, mine = per_second(raw, iterations), per_second(ours, iterations)
        raw_rates.append(theirs)
        our_rates.append(mine)
        ratios.append(mine / theirs)
    return statistics.median(raw_rates), statistics.median(our_rates), statistics.median(ratios)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_path", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000, help="verifies per round (default 3000)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of each, alternating (default 9)")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.rounds < 1:
        parser.error("--iterations and --rounds must be at least 1")
    raw, ours, ratio = measure(args.iterations, args.rounds)
    what = f"median of {args.rounds} rounds x {args.iterations}"
    print(f"raw ECDSA-P256 verify:   {raw:10,.0f} /s  (per CPU second, {what})", file=out)
    print(f"verify_authentication:   {ours:10,.0f} /s  (per CPU second, {what})", file=out)
    print(f"verify path / raw:       {ratio:10.2f}     (median of the rounds' ratios; issue 14 asks >= 0.80)", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
