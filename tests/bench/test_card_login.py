"""bench/card_login.py runs: a round of a few logins on this checkout's code beside the same code as "before".

No time is asserted (a benchmark measures, a test cannot on a shared machine); the script fails if the
responders are asked while it times, so "OCSP cached" is checked here as well.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_card_login_bench_prints_both_rates_and_their_ratio():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "card_login.py"), "--count", "3", "--rounds", "2", "--profile", "demo",
         "--before", str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo  round 2: after" in done.stdout
    assert "logins/s" in done.stdout and "x the rate before, side by side" in done.stdout
