"""Command line: ``tmpnb --config PATH`` runs the orchestrator; ``tmpnb --check-config PATH`` validates."""

from __future__ import annotations

import argparse
import sys

from tmpnb import __version__
from tmpnb.config import ConfigError, load

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tmpnb",
        description="Instant temporary Jupyter notebooks: a warm pool of containers behind CHP.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", metavar="PATH", help="run with this TOML configuration file")
    group.add_argument(
        "--check-config",
        metavar="PATH",
        help="validate this configuration file (secrets in the environment not required); exit 0 or 2",
    )
    parser.add_argument("--version", action="version", version=f"tmpnb {__version__}")
    args = parser.parse_args(argv)

    if args.check_config:
        try:
            load(args.check_config, need_secrets=False)
        except ConfigError as exc:
            print(f"tmpnb: configuration error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"tmpnb: {args.check_config}: configuration OK")
        return 0

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"tmpnb: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from tmpnb.app import run  # imported late: --check-config needs no aiohttp/aiodocker

    return run(config, args.config)


if __name__ == "__main__":
    sys.exit(main())
