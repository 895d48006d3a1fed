"""`python -m benchmarks NAME` prints speed/latency/quality tables (not run by CI)."""
