"""Email subject, plain text and HTML for one alert or a digest, and the MIME message. Pure.

The Message-ID is derived from the alert ids, so a re-sent alert carries the same Message-ID and
mail clients that collapse duplicates show it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape

from meterline.alerts.view import AlertView

SUBJECT_PREFIX = "[meterline]"


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str
    alert_ids: tuple[str, ...]


def message_id_for(alert_ids: tuple[str, ...], sender: str) -> str:
    """`<meterline.<hash>@<sender's domain>>`, the same for the same alerts."""
    digest = hashlib.sha256("\n".join(sorted(alert_ids)).encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "meterline.invalid"
    return f"<meterline.{digest}@{domain}>"


def alert_text_lines(view: AlertView) -> list[str]:
    width = max(len(label) for label, _ in view.facts) + 2
    lines = [view.title, ""]
    for label, value in view.facts:
        lines.append(f"{label + ':':<{width}}{value}")
        if label == "Spend":
            lines.append(f"{'':<{width}}[{view.bar}]")
    if view.notes:
        lines += [""] + list(view.notes)
    if view.top_models:
        lines += ["", "Top models by spend"]
        lines += [f"  {i}. {name}  {spend}" for i, (name, spend) in enumerate(view.top_models, 1)]
    lines += [""] + list(view.footer)
    if view.link:
        lines += ["", f"Dashboard: {view.link}"]
    lines += ["", "--", f"meterline alert {view.alert_id}"]
    return lines


def _bar_html(view: AlertView) -> str:
    percent = max(0, min(100, int(view.percent_value)))
    colour = "#c0392b" if percent >= 100 else "#e67e22" if percent >= 80 else "#2e86de"
    return (
        '<table role="presentation" width="300" cellpadding="0" cellspacing="0" '
        'style="border-collapse:collapse;background:#eee"><tr>'
        f'<td width="{percent}%" style="background:{colour};height:10px"></td>'
        f'<td width="{100 - percent}%" style="height:10px"></td></tr></table>'
    )


def _html_body(view: AlertView) -> str:
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{escape(label)}</th><td>{escape(value)}</td></tr>'
        for label, value in view.facts
    )
    parts = [
        f'<h2 style="font-family:sans-serif">{escape(view.title)}</h2>',
        f'<table style="font-family:sans-serif">{rows}</table>',
        f"<p>{_bar_html(view)}<br>{escape(view.percent)} of limit</p>",
    ]
    parts += [f"<p><strong>{escape(note)}</strong></p>" for note in view.notes]
    if view.top_models:
        items = "".join(f"<li>{escape(name)} — {escape(spend)}</li>" for name, spend in view.top_models)
        parts.append(f"<p>Top models by spend</p><ol>{items}</ol>")
    parts.append(f"<p>{'<br>'.join(escape(line) for line in view.footer)}</p>")
    if view.link:
        parts.append(f'<p><a href="{escape(view.link, quote=True)}">Open dashboard</a></p>')
    parts.append(f'<p style="color:#888;font-size:small">meterline alert {escape(view.alert_id)}</p>')
    return "<html><body>" + "\n".join(parts) + "</body></html>"


def alert_email(view: AlertView) -> EmailContent:
    """The email of one alert."""
    return EmailContent(
        subject=f"{SUBJECT_PREFIX} {view.summary}",
        text="\n".join(alert_text_lines(view)) + "\n",
        html=_html_body(view),
        alert_ids=(view.alert_id,),
    )


def digest_email(views: list[AlertView]) -> EmailContent:
    """One email standing for many alerts."""
    text = [f"{len(views)} budget alerts", ""]
    text += [f"- {view.summary}" for view in views]
    text += ["", "Sent as one digest because many alerts were pending for this address."]
    items = "".join(
        f"<li>{escape(view.summary)}{f' (<a href={escape(view.link, quote=True)!r}>dashboard</a>)' if view.link else ''}</li>"
        for view in views
    )
    html = (
        f'<html><body><h2 style="font-family:sans-serif">{len(views)} budget alerts</h2>'
        f"<ul>{items}</ul><p>Sent as one digest because many alerts were pending for this address.</p>"
        "</body></html>"
    )
    return EmailContent(
        subject=f"{SUBJECT_PREFIX} {len(views)} budget alerts",
        text="\n".join(text) + "\n",
        html=html,
        alert_ids=tuple(view.alert_id for view in views),
    )


def build_email(content: EmailContent, *, sender: str, recipients: list[str], sent_at: datetime) -> EmailMessage:
    """The multipart/alternative message (text, then HTML) with a deterministic Message-ID."""
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id_for(content.alert_ids, sender)
    message["X-Meterline-Alert-Ids"] = ",".join(content.alert_ids)[:900]
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message
