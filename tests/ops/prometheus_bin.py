"""Where the tests find the Prometheus server and promtool.

On PATH first, then in the cache directory .ci/run unpacks them into from
the distribution's prometheus package (installing the package would start a
system Prometheus from its postinst), then in a nox session's bin directory
(ops/check.sh puts promtool there).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chatd-test-tools"
BIN_DIR = CACHE_DIR / "bin"


def find_tool(name: str) -> tuple[Path | None, str]:
    """(path, "") when `name` is found, else (None, why not and how to get it)."""
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path), ""
    for candidate in [BIN_DIR / name, *sorted(ROOT.glob(f".nox/*/bin/{name}"))]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate, ""
    return None, (
        f"{name} is not on PATH nor in {BIN_DIR}: run .ci/run, or unpack usr/bin/{name} "
        f"from the Debian package (apt-get download prometheus; dpkg-deb -x) into {BIN_DIR}"
    )
