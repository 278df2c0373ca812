"""Slack Block Kit for one alert or a digest, with the fallback text. Pure.

Every message carries metadata `{event_type: "meterline_alert", event_payload: {alert_id,
alert_ids}}`: after a crash the dispatcher finds what it already posted by that metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meterline.alerts.view import AlertView

METADATA_EVENT_TYPE = "meterline_alert"
MAX_BLOCKS = 50
_HEADER_LIMIT = 150
_TEXT_LIMIT = 3000
DIGEST_LINES = 40

Block = dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    """What chat.postMessage (or a webhook) receives."""

    text: str
    blocks: list[Block]
    alert_ids: tuple[str, ...]

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": {"alert_id": self.alert_ids[0], "alert_ids": list(self.alert_ids)},
        }


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header(text: str) -> Block:
    if len(text) > _HEADER_LIMIT:
        text = text[: _HEADER_LIMIT - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> Block:
    if len(text) > _TEXT_LIMIT:
        text = text[: _TEXT_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(parts: list[str]) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": part} for part in parts]}


_ICONS = {"threshold": ":rotating_light:", "forecast": ":chart_with_upwards_trend:", "unpriced": ":grey_question:"}


def alert_message(view: AlertView) -> SlackMessage:
    """The Block Kit message of one alert."""
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{escape_mrkdwn(value)}"} for label, value in view.facts]
    blocks: list[Block] = [
        _header(f"{_ICONS.get(view.kind, ':bell:')} {view.title}"),
        {"type": "section", "fields": fields[:10]},
        _section(f"`{view.bar}` {view.percent} of limit"),
    ]
    if view.notes:
        blocks.append(_section("\n".join(f":warning: {escape_mrkdwn(note)}" for note in view.notes)))
    if view.top_models:
        lines = [f"{i}. {escape_mrkdwn(name)} — {spend}" for i, (name, spend) in enumerate(view.top_models, 1)]
        blocks.append(_section("*Top models by spend*\n" + "\n".join(lines)))
    blocks.append(_context([escape_mrkdwn(" · ".join(view.footer)), f"alert `{escape_mrkdwn(view.alert_id)}`"]))
    if view.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": view.link}
                ],
            }
        )
    return SlackMessage(text=view.summary, blocks=blocks, alert_ids=(view.alert_id,))


def digest_message(views: list[AlertView]) -> SlackMessage:
    """One message standing for many alerts (sent instead of a burst)."""
    title = f":bell: {len(views)} budget alerts"
    lines = [
        f"• {escape_mrkdwn(view.summary)}" + (f" (<{view.link}|dashboard>)" if view.link else "")
        for view in views[:DIGEST_LINES]
    ]
    if len(views) > DIGEST_LINES:
        lines.append(f"…and {len(views) - DIGEST_LINES} more")
    blocks: list[Block] = [_header(title)]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > _TEXT_LIMIT - 1:
            blocks.append(_section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    blocks.append(_context(["Sent as one digest because many alerts were pending for this channel."]))
    fallback = f"{len(views)} budget alerts: " + "; ".join(view.title for view in views[:5])
    if len(views) > 5:
        fallback += f"; and {len(views) - 5} more"
    return SlackMessage(text=fallback, blocks=blocks[:MAX_BLOCKS], alert_ids=tuple(v.alert_id for v in views))
