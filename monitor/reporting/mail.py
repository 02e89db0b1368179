"""The mail of a scheduled report: a plain-text part (the report as a table), the HTML
version as the part mail clients show (``formats`` has ``html``), and the daily CSV attached
(``formats`` has ``csv``). Sent by the SMTP settings of the email pager the report names."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from monitor.config.reports import ReportSection
from monitor.reporting.csvfile import daily_csv
from monitor.reporting.figures import Report
from monitor.reporting.html import render_html
from monitor.reporting.text import as_table
from ticketing.pagers.email import EmailSettings, new_message_id

REPORT_HEADER = "X-Watchdesk-Report"


@dataclass(frozen=True)
class Composed:
    message: EmailMessage
    html: str


def title_of(section: ReportSection, label: str) -> str:
    return f"watchdesk report {section.name}: {label}"


def compose(
    section: ReportSection,
    report: Report,
    label: str,
    settings: EmailSettings,
    now: float,
) -> Composed:
    title = title_of(section, label)
    html = render_html(report, title, now)
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = settings.from_address
    message["To"] = ", ".join(section.recipients)
    message["Date"] = email.utils.format_datetime(datetime.fromtimestamp(now, UTC))
    message["Message-ID"] = new_message_id(settings)
    message[REPORT_HEADER] = f"{section.name}; {label}"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    scope = f" for customer {section.customer}" if section.customer else ""
    message.set_content(f"{title}{scope}\n\n{as_table(report)}\n\n-- \nwatchdesk\n")
    if "html" in section.formats:
        message.add_alternative(html, subtype="html")
    if "csv" in section.formats:
        start = label.split(" ")[0]
        message.add_attachment(
            daily_csv(report).encode(),
            maintype="text",
            subtype="csv",
            filename=f"watchdesk-{section.name}-{start}.csv",
        )
    return Composed(message, html)
