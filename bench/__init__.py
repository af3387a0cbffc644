"""Benchmarks: latency against batch size, same-run peers, figures CI can compare."""
