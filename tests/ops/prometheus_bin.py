"""Where the tests find the Prometheus server, promtool and nginx.

On PATH first, then in the cache directory .ci/run unpacks them into from
the distribution's prometheus and nginx packages (installing a package would
start a system server from its postinst), then in a nox session's bin
directory (ops/check.sh puts promtool and nginx there).
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
        f"{name} is not on PATH nor in {BIN_DIR}: run .ci/run, or unpack the binary "
        f"from the Debian package (apt-get download prometheus or nginx; dpkg-deb -x) "
        f"into {BIN_DIR}"
    )
