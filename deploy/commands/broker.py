"""`journeys broker ...`: the project-local Kafka broker."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import TYPE_CHECKING

from deploy.commands import SubParsers, examples
from schemas.settings import Settings

if TYPE_CHECKING:
    from deploy.local.broker import LocalBroker


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    broker = sub.add_parser(
        "broker",
        help="run the project-local Kafka broker (KRaft)",
        epilog=examples("broker start", "broker status", "broker stop"),
    )
    bsub = broker.add_subparsers(title="actions", metavar="ACTION")
    test = "--instance test --port 19192 --controller-port 19193"
    for name, func, text, epilog in (
        (
            "start",
            _broker_start,
            "start the broker and wait until it answers (no-op if running)",
            examples("broker start", f"broker start {test}"),
        ),
        (
            "stop",
            _broker_stop,
            "stop the broker by its pid and wait for it to exit",
            examples("broker stop", "broker stop --instance test"),
        ),
        (
            "status",
            _broker_status,
            "say whether the broker runs, and where",
            examples("broker status", "broker status --instance test"),
        ),
        (
            "run",
            _broker_run,
            "start the broker, run a command against it, stop what was started",
            examples(f"broker run {test} --fresh -- python -m pytest"),
        ),
        (
            "fetch",
            _broker_fetch,
            "download the broker's jars from Maven Central (once)",
            examples("broker fetch"),
        ),
    ):
        b = bsub.add_parser(name, help=text, description=text, epilog=epilog)
        b.add_argument("--instance", help="instance name: own ports and data folder")
        b.add_argument("--port", type=int, help="client port")
        b.add_argument("--controller-port", type=int, help="KRaft controller port")
        if name == "run":
            b.add_argument("--fresh", action="store_true", help="wipe the instance's data first")
            b.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
        b.set_defaults(func=func)


def _broker(settings: Settings, args: argparse.Namespace) -> LocalBroker:
    from deploy.local.broker import LocalBroker

    local = settings.local_broker.model_copy(
        update={
            k: v
            for k, v in (
                ("instance", args.instance),
                ("port", args.port),
                ("controller_port", args.controller_port),
            )
            if v is not None
        }
    )
    return LocalBroker(local, settings.data_dir)


def _broker_start(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    started = broker.start()
    state = "started" if started else "already running"
    print(f"kafka {broker.settings.instance}: {state} on {broker.bootstrap}")
    return 0


def _broker_fetch(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    print(f"kafka jars: {broker.fetch_jars()}")
    return 0


def _broker_stop(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    stopped = broker.stop()
    print(f"kafka {broker.settings.instance}: {'stopped' if stopped else 'was not running'}")
    return 0


def _broker_status(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    pid = broker.running_pid()
    where = broker.bootstrap
    print(
        f"kafka {broker.settings.instance}: "
        + (f"running (pid {pid}) on {where}" if pid else "not running")
    )
    return 0 if pid else 1


def _broker_run(settings: Settings, args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"] if args.command else []
    if not command:
        print("journeys broker run: give a command after --", file=sys.stderr)
        return 2
    broker = _broker(settings, args)
    if args.fresh:
        broker.wipe()
    started = broker.start()
    env = {**os.environ, "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap}
    env["JOURNEYS_LOCAL_BROKER__INSTANCE"] = broker.settings.instance
    env["JOURNEYS_LOCAL_BROKER__PORT"] = str(broker.settings.port)
    env["JOURNEYS_LOCAL_BROKER__CONTROLLER_PORT"] = str(broker.settings.controller_port)
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # the child got the same SIGINT from the terminal; wait for it
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.kill()
            child.wait()
        if started:
            broker.stop()
