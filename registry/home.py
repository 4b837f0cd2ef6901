"""Where the registry lives: `ADAPTERS_HOME`, else the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "ADAPTERS_HOME"


def default_home() -> Path:
    """The home directory holding `registry.db` and `blobs/`."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("loradock", appauthor=False))
