"""tmpnb's benchmarks (`python -m bench`)."""

import sys
from pathlib import Path

# The shared real-stack harness (tests/stack.py) and the notebook 6 command (test_jupyter) live with
# the tests.
_TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(_TESTS), str(_TESTS / "integration")]
