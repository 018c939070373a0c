"""Where the files are: config.toml, the archived Go CLI's config.yaml, the nearest valyent.toml."""

from __future__ import annotations

import os
from pathlib import Path

from valyent_cli.config.keys import ENV_CONFIG_DIR

CONFIG_FILE = "config.toml"
PROJECT_FILE = "valyent.toml"


def config_dir() -> Path:
    """The directory of config.toml: $VALYENT_CONFIG_DIR, else the platform's user config dir for valyent."""
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("valyent"))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def go_config_path() -> Path:
    """Where the archived Go CLI kept its configuration."""
    return Path.home() / ".valyent" / "config.yaml"


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest valyent.toml in ``start`` (default: the working directory) or one of its parents."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was deleted under us
        return None
    for directory in (here, *here.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None
