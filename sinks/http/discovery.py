"""Finding the process that serves an embedded ClickHouse folder.

The serving process writes `.<folder>.http.json` beside the folder (pid, host, port, user) and
removes it when it stops. A reader trusts it only when that pid is alive and the port answers
ClickHouse's `/ping`, so a file left by a killed process is ignored.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

CHDB_PREFIX = "chdb://"


def folder_of(dsn: str) -> Path | None:
    """The data folder of an embedded DSN (`chdb:///path`), or None for a server DSN."""
    if not dsn.startswith(CHDB_PREFIX):
        return None
    return Path(dsn[len(CHDB_PREFIX) :].split("?", 1)[0]).resolve()


def announcement_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.http.json"


def announce(folder: Path, host: str, port: int, user: str, password: str) -> Path:
    """Record that this process serves `folder` at host:port; returns the file to remove."""
    path = announcement_path(folder)
    body = {"pid": os.getpid(), "host": host, "port": port, "user": user, "password": password}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    tmp.chmod(0o600)  # it holds the password readers use
    tmp.replace(path)
    return path


def withdraw(path: Path) -> None:
    """Remove this process's announcement (only if it is still this process's)."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def live_interface(dsn: str) -> str | None:
    """The `http://` DSN serving the embedded folder of `dsn` right now, or None."""
    folder = folder_of(dsn)
    if folder is None:
        return None
    try:
        found: dict[str, Any] = json.loads(announcement_path(folder).read_text())
        pid, host, port = int(found["pid"]), str(found["host"]), int(found["port"])
        user, password = str(found.get("user", "default")), str(found.get("password", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid) or not _answers(host, port):
        return None
    netloc_host = f"[{host}]" if ":" in host else host
    credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"http://{credentials}@{netloc_host}:{port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(host: str, port: int) -> bool:
    shown = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{shown}:{port}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False
