"""E-mail a digest: `ASSISTANT_SMTP_URL=smtp://user:pass@host:587` (STARTTLS, required) or
`smtps://...:465` (TLS from the start). The HTML digest goes with a plain-text
alternative. Every message about a failure shows the URL without its password.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from ..errors import DeliveryError, UsageError
from ..settings import display_url


def send_digest(
    smtp_url: str,
    sender: str | None,
    recipients: list[str],
    subject: str,
    text: str,
    html: str,
    timeout: float = 30.0,
) -> str:
    """Send one message; returns its Message-ID."""
    from email.utils import make_msgid

    parts = urlsplit(smtp_url)
    shown = display_url(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise UsageError(f"ASSISTANT_SMTP_URL {shown!r}: expected smtp://user:pass@host:587")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    port = parts.port or (465 if parts.scheme == "smtps" else 587)
    sender = sender or (f"{user}@{parts.hostname}" if user and "@" not in user else user)
    if not sender:
        raise UsageError("ASSISTANT_SMTP_FROM: no sender address (and none in the SMTP URL)")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Message-ID"] = make_msgid(domain="paper-assistant")
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    context = ssl.create_default_context()
    try:
        if parts.scheme == "smtps":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                parts.hostname, port, timeout=timeout, context=context
            )
        else:
            server = smtplib.SMTP(parts.hostname, port, timeout=timeout)
        with server:
            server.ehlo()
            if parts.scheme == "smtp":
                if not server.has_extn("starttls"):
                    raise DeliveryError(
                        f"{shown} does not offer STARTTLS; refusing to send in clear"
                    )
                server.starttls(context=context)
                server.ehlo()
            if user and password:
                server.login(user, password)
            server.send_message(msg)
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError:
        raise DeliveryError(f"{shown} refused the user name or password") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        reason = str(exc).replace(password, "****") if password else str(exc)
        raise DeliveryError(f"could not send the digest through {shown}: {reason}") from None
    return str(msg["Message-ID"])
