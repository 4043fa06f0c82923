"""Benchmarks of MoCert (``make bench``, ``make bench-verify``); see README.md here. Not tests: they time, and
print."""
