"""Following the worker's console alerts in its log, and the .eml files the capture writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from meterline.demo.display import ConsoleAlertTail
from meterline.demo.mailcapture import EmlWriter, read_messages


def test_console_tail_reads_alert_lines_as_they_are_written(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(
        b"2026-11-28T04:00:00 INFO meterline.stream.worker worker starting\n=== [meterline] team-01/daily cro"
    )
    tail = ConsoleAlertTail(log)
    assert tail.poll() == []
    with log.open("ab") as handle:
        handle.write(b"ssed 50% ===\nbody line\n=== not closed\n=== [meterline] 2 budget alerts ===\n")
    assert tail.poll() == ["[meterline] team-01/daily crossed 50%", "[meterline] 2 budget alerts"]
    assert tail.poll() == ["[meterline] team-01/daily crossed 50%", "[meterline] 2 budget alerts"]


def test_eml_writer_stores_each_message_whole(tmp_path: Path) -> None:
    writer = EmlWriter(tmp_path / "mail")
    raw = b"Subject: [meterline] hello\r\nTo: a@example.org\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
    for _ in range(2):
        answer = asyncio.run(writer.handle_DATA(None, None, SimpleNamespace(original_content=raw, content=raw)))
        assert answer.startswith("250")
    messages = read_messages(tmp_path / "mail")
    assert [path.name[:6] for path, _ in messages] == ["00001-", "00002-"]
    assert [str(message["Subject"]) for _, message in messages] == ["[meterline] hello"] * 2
    assert not list((tmp_path / "mail").glob("*.part"))
