"""The `journeys` subcommands, one module per area; `deploy/cli.py` assembles them."""

from __future__ import annotations

import argparse

EPILOG = (
    "Settings: JOURNEYS_* environment variables or a TOML file named by JOURNEYS_SETTINGS_FILE."
)

SubParsers = argparse._SubParsersAction  # argparse has no public name for it
