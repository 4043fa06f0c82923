"""The verify-path benchmark still runs and prints its three lines (its numbers are not judged here)."""

from __future__ import annotations

import io
import re

from bench import verify_path


def test_the_benchmark_prints_both_rates_and_their_ratio():
    out = io.StringIO()
    assert verify_path.main(["--iterations", "3", "--rounds", "2"], out=out) == 0
    lines = out.getvalue().splitlines()
    names = [line.split(":")[0] for line in lines]
    assert names == ["raw ECDSA-P256 verify", "verify_authentication", "verify path / raw"]
    numbers = [float(re.search(r":\s+([\d,.]+)", line).group(1).replace(",", "")) for line in lines]
    assert all(number > 0 for number in numbers), lines
