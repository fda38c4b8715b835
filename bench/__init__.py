"""tmpnb's benchmarks (`python -m bench`); the real-stack harness is testsupport.stack, shared
with the tests."""
