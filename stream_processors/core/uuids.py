"""Name-based UUIDs (version 5) as text: `str(uuid.uuid5(namespace, name))`, spelled out.

Person, record, journey and session ids are made this way, once per new identifier, record,
journey or session; `uuid.UUID` and its bit operations cost three times the hashing itself.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hashlib import _Hash

# The RFC 4122 variant (binary 10xx) in the 17th hex digit, for each digit the hash gave.
_VARIANT: Final = {f"{n:x}": "89ab"[n & 3] for n in range(16)}


def namespace(value: uuid.UUID) -> _Hash:
    """The SHA-1 state fed with a namespace's bytes: copying it costs less than hashing them
    again for every name."""
    return hashlib.sha1(value.bytes)


def uuid5(space: _Hash, name: str) -> str:
    """The text of the version 5 UUID of `name` in the namespace `space` (`namespace()`)."""
    sha = space.copy()
    sha.update(name.encode())
    h = sha.hexdigest()
    # Version 5 in the 13th hex digit, the variant in the top bits of the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
