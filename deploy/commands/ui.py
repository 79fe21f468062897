"""`journeys ui`: the analysts' page (funnel, paths before drop-offs, drop-off trend, alert
timeline, person timeline) over ClickHouse, read-only, on this machine unless told otherwise.
The page is `deploy.ui`; this module only wires the command line to it."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from deploy.commands import SubParsers, examples
from schemas.settings import Settings, UiSettings


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ui",
        help="the analysts' page: funnel, paths, drop-off trend, alerts, person timeline",
        description="Serve a read-only page of charts over ClickHouse, live while the "
        "pipeline runs (through the sink's interface), each chart's data downloadable as "
        "CSV. Bound to 127.0.0.1 by default; another address needs JOURNEYS_UI__TOKEN, and "
        "then every request must carry it (open the page once with ?token=<token>).",
        epilog=examples("ui", "ui --port 8090", "ui --host 0.0.0.0 --port 8090"),
    )
    p.add_argument("--host", help="address to bind (default: the setting, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: the setting, 8089; 0: any free)")
    p.set_defaults(func=_ui)


def _ui(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.ui.server import bind, serve

    chosen = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        # Validated again: an address reachable from other machines needs the token.
        ui = UiSettings.model_validate({**settings.ui.model_dump(), **chosen})
    except ValidationError as exc:
        print(
            f"journeys: error: {exc.errors()[0]['msg'].removeprefix('Value error, ')}",
            file=sys.stderr,
        )
        return 2
    try:
        sock = bind(ui)
    except OSError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    opening = "?token=<token> " if ui.token else ""
    print(f"journeys ui: serving http://{shown}:{port}/ {opening}(Ctrl-C to stop)", flush=True)
    serve(settings.model_copy(update={"ui": ui}), sock)
    return 0
