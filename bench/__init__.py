"""Benchmarks of MoCert (``make bench-verify``); see README.md here. Not tests: they time, and print."""
