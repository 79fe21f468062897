"""The words the touchpoint contract and the configuration files share: channels and names.

A module of its own so that `schemas/friction.py` (the signals, and the friction mapping that
names channels) and `schemas/touchpoint.py` (which states signals) can both use them without
importing each other in a circle. `schemas.touchpoint` re-exports both.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints


class Channel(StrEnum):
    WEB = "web"
    APP = "app"
    CALL_CENTER = "call_center"
    STORE = "store"


Name = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
