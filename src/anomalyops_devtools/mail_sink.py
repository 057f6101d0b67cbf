"""A local SMTP sink (aiosmtpd) that stores every received message as an ``.eml`` file.

The embedded default for alert emails: ``anomalyops mail-sink --port 8025 --maildir var/mail``
and read the files (any mail client opens ``.eml``). Tests start one on a free loopback port.
The envelope recipients are kept in an ``X-Envelope-To`` header, since Bcc leaves no trace.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import os
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

log = logging.getLogger(__name__)


class _SaveHandler:
    def __init__(self, maildir: Path):
        self.maildir = maildir

    async def handle_DATA(self, server, session, envelope) -> str:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        header = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(header + data)
        os.replace(tmp, self.maildir / name)  # readers never see half a message
        log.info("mail-sink: %s -> %s saved as %s", envelope.mail_from, envelope.rcpt_tos, name)
        return "250 Message accepted for delivery"


class MailSink:
    """An SMTP server on ``host:port`` writing messages into ``maildir`` (a context manager)."""

    def __init__(self, maildir: str | Path, host: str = "127.0.0.1", port: int = 8025):
        self.maildir = Path(maildir)
        self.host, self.port = host, port
        self._controller = None

    def start(self) -> MailSink:
        from aiosmtpd.controller import Controller

        self.maildir.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            _SaveHandler(self.maildir), hostname=self.host, port=self.port, ready_timeout=10
        )
        self._controller.start()
        log.info("mail-sink listening on %s:%d, saving to %s", self.host, self.port, self.maildir)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def messages(self) -> list[EmailMessage]:
        return read_maildir(self.maildir)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages, once at least ``count`` have arrived (raises TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                if len(found) < count:
                    raise TimeoutError(f"{len(found)} of {count} messages after {timeout}s")
                return found
            time.sleep(0.05)


def read_maildir(maildir: str | Path) -> list[EmailMessage]:
    """Every stored message, oldest first."""
    folder = Path(maildir)
    if not folder.exists():
        return []
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(folder.glob("*.eml"))
    ]


def serve(maildir: str | Path, host: str = "127.0.0.1", port: int = 8025) -> None:
    """Run until interrupted (the CLI's ``mail-sink``)."""
    with MailSink(maildir, host, port):
        print(
            f"mail-sink: SMTP on {host}:{port}; messages saved as .eml in {Path(maildir).resolve()}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
