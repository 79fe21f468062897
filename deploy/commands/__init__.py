"""The `journeys` subcommands, one module per area; `deploy/cli.py` assembles them."""

from __future__ import annotations

import argparse

EPILOG = (
    "Settings: JOURNEYS_* environment variables or a TOML file named by JOURNEYS_SETTINGS_FILE."
)

SubParsers = argparse._SubParsersAction  # argparse has no public name for it


def examples(*commands: str) -> str:
    """An epilog: example invocations (`journeys` and its arguments), then EPILOG."""
    label = "Examples" if len(commands) > 1 else "Example"
    return f"{label}: " + ", ".join(f"`journeys {c}`" for c in commands) + ". " + EPILOG
