"""Test support shared by tests/ and bench/: `testsupport.stack` runs a real stack (CHP, the
orchestrator as a process, the local Docker engine). Importable from the repository root (pytest's
`pythonpath = ["."]`, `python -m bench`)."""
