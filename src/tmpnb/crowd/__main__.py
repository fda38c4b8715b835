"""``python -m tmpnb.crowd``: the same as the ``tmpnb-crowd`` command."""

import sys

from tmpnb.crowd.cli import main

sys.exit(main())
