"""Benchmarks of tmpnb on this machine, each measured side by side in one run (issue 7).

    python -m bench                  all of them, one after the other (`make bench`)
    python -m bench NAME [OPTIONS]   one: spawn, static or cost (`python -m bench NAME --help`)

Each prints its figures and writes bench/results/<name>.json with the machine it ran on. Not tests:
nothing is asserted. Everything they create carries a unique instance name and is removed after.
"""

from __future__ import annotations

import importlib
import signal
import sys
import time

BENCHES = {
    "spawn": "bench.spawn",  # time-to-notebook: warm pool against no pool (light image, real Jupyter)
    "static": "bench.static",  # static files from nginx's copy against CHP and the container
    "cost": "bench.cost",  # the orchestrator's RSS and CPU with 1,000 slots
}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the clean-ups (finally blocks) on SIGTERM too


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr] - figures as they come
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and argv[0] not in BENCHES:
        print(
            f"python -m bench: unknown benchmark {argv[0]!r}; choose from {', '.join(BENCHES)}",
            file=sys.stderr,
        )
        return 2
    names = [argv[0]] if argv else list(BENCHES)
    code = 0
    for name in names:
        t0 = time.monotonic()
        module = importlib.import_module(BENCHES[name])
        code |= module.main(argv[1:] if argv else [])
        print(f"== {name}: {time.monotonic() - t0:.0f} s\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
