"""Filter for playbooks/testhost.yml: expand ``${NAME}`` / ``${NAME:-default}`` the way Molecule
does, so `make demo` creates its host from the very platform the Molecule scenarios use."""

from __future__ import annotations

import os
import re
from typing import Any

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def envsubst(text: str, overrides: dict[str, str] | None = None) -> str:
    """Replace ${NAME} and ${NAME:-default} with the environment's value (overrides first)."""
    env = {**os.environ, **(overrides or {})}

    def repl(match: re.Match[str]) -> str:
        value = env.get(match["name"], "")
        return value if value else (match["default"] or "")

    return _VAR.sub(repl, text)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"envsubst": envsubst}
