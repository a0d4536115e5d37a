"""Files: ``llmperf.toml`` or ``[tool.llmperf]`` in ``pyproject.toml``; the only disk I/O."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pytest_llmperf.config.defaults import default_config
from pytest_llmperf.config.parse import parse_config
from pytest_llmperf.config.records import PerfConfig
from pytest_llmperf.config.vocab import ConfigError

# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            str(path), "", "file not found", "check the path given to the llmperf config option"
        ) from None
    except OSError as exc:
        raise ConfigError(
            str(path), "", f"cannot read it ({exc.strerror})", "check its permissions"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            str(path), "", f"not valid TOML ({exc})", "fix the syntax there"
        ) from None


def _from_file(path: Path) -> PerfConfig | None:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        section = (
            data.get("tool", {}).get("llmperf") if isinstance(data.get("tool"), dict) else None
        )
        if section is None:
            return None
        return parse_config(section, source=str(path), prefix="tool.llmperf")
    return parse_config(data, source=str(path))


def load_config(rootdir: Path, explicit: Path | None = None) -> PerfConfig:
    """The config for a session: ``explicit`` if given, else ``llmperf.toml`` or
    ``[tool.llmperf]`` in ``pyproject.toml`` under ``rootdir``, else ``default_config()``."""
    if explicit is not None:
        path = explicit if explicit.is_absolute() else rootdir / explicit
        cfg = _from_file(path)
        if cfg is None:
            raise ConfigError(
                str(path),
                "tool.llmperf",
                "the file has no [tool.llmperf] table",
                "add one, or point the option at an llmperf.toml",
            )
        return cfg
    standalone = rootdir / "llmperf.toml"
    pyproject = rootdir / "pyproject.toml"
    from_pyproject = _from_file(pyproject) if pyproject.is_file() else None
    if standalone.is_file():
        if from_pyproject is not None:
            raise ConfigError(
                str(standalone),
                "",
                f"{pyproject} also has a [tool.llmperf] table",
                "keep the configuration in one of the two files",
            )
        cfg = _from_file(standalone)
        assert cfg is not None
        return cfg
    return from_pyproject if from_pyproject is not None else default_config()
