"""`python3 /usr/local/lib/tmpnb/extract_static ...`: the directory runs as a program (the package's
parent is put on sys.path, so its modules import as extract_static.*)."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from extract_static.cli import main

sys.exit(main())
