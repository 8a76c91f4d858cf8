"""Device model configurations: one TOML file per model, decoded by ``protocol.config``."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


def model_files() -> dict[str, Path]:
    """Model name (the file's stem) -> its TOML file."""
    return {p.stem: p for p in sorted(MODELS_DIR.glob("*.toml"))}
