"""Rewrite the settings table at the end of docs/configuration.md from gosight.config."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gosight.config import describe_settings_markdown  # noqa: E402

MARKER = "| Setting | Role |"


def main() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    text = path.read_text(encoding="utf-8")
    head = text[:text.index(MARKER)]
    path.write_text(head + describe_settings_markdown(), encoding="utf-8")


if __name__ == "__main__":
    main()
