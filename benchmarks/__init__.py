"""processcache's benchmarks: run by hand with ``python -m benchmarks``, never as tests."""
