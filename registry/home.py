"""Where the registry lives: `ADAPTERS_HOME`, else the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import HomeError

ENV_HOME = "ADAPTERS_HOME"


def default_home() -> Path:
    """The home directory holding `registry.db` and `blobs/`."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("loradock", appauthor=False))


def make_home(home: Path) -> Path:
    """Create `home` (and its parents) if needed; HomeError when it is a file or cannot be made."""
    if home.exists() and not home.is_dir():
        raise HomeError(
            f"The registry home {str(home)!r} is a file, not a folder; set {ENV_HOME} to a folder "
            "(or unset it for the default) and try again."
        )
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(
            f"The registry home {str(home)!r} cannot be created ({exc.strerror or exc}); set "
            f"{ENV_HOME} to a folder you can write and try again."
        ) from None
    return home
