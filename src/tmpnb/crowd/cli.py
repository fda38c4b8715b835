"""The ``tmpnb-crowd`` command: exit 0 when every visitor was served, 1 when any failed, 2 when the
run could not be done as asked (a wrong option, descriptors that cannot be read)."""

from __future__ import annotations

import sys

from tmpnb.crowd.fds import SamplerError
from tmpnb.crowd.options import OptionError, from_args
from tmpnb.crowd.runner import run


def main(argv: list[str] | None = None) -> int:
    try:
        opts = from_args(argv)
        report = run(opts)
    except (OptionError, SamplerError) as exc:
        print(f"tmpnb-crowd: error: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    for what, path in (("JSON", opts.json), ("chart", opts.chart)):
        if path is not None:
            print(f"wrote {what} {path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
