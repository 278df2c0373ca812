"""A local SMTP capture: an aiosmtpd server on loopback that stores each message as an .eml file.

Run it as its own process so it can outlive the demo (`--keep`):

    python -m meterline.demo.mailcapture --port 1025 --dir ./.meterline-demo/mail

Files are named `<sequence>-<UTC time>.eml` and appear whole (written, then renamed).

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import os
import signal
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any


class EmlWriter:
    """aiosmtpd handler: accept every message and write it to `directory` as an .eml file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        start = len(list(self.directory.glob("*.eml"))) + 1
        self._sequence = itertools.count(start)
        self._lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode()
        with self._lock:
            number = next(self._sequence)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.directory / f"{number:05d}-{stamp}.eml"
        partial = final.with_suffix(".part")
        partial.write_bytes(raw)
        os.replace(partial, final)
        return "250 OK stored"


def read_messages(directory: Path) -> list[tuple[Path, EmailMessage]]:
    """The captured messages, oldest first, parsed."""
    found = []
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((path, message))
    return found


def serve(port: int, directory: Path, host: str = "127.0.0.1") -> None:
    """Run until SIGTERM or SIGINT."""
    from aiosmtpd.controller import Controller

    controller = Controller(EmlWriter(directory), hostname=host, port=port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.start()
    print(f"capturing mail on {host}:{port} into {directory}", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Store every message sent to a loopback SMTP port as an .eml file.")
    parser.add_argument("--port", type=int, required=True, help="SMTP port on 127.0.0.1")
    parser.add_argument("--dir", type=Path, required=True, help="folder for the .eml files")
    args = parser.parse_args(argv)
    serve(args.port, args.dir)


if __name__ == "__main__":
    main()
