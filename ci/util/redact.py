"""Text from elsewhere made safe to print: credentials out of URLs, known secrets masked, terminal control
sequences stripped (a console log must not move the cursor, retitle the window or hide lines on our terminal).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "****"
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte ESC sequences, and C0/C1 controls
# except tab, newline and carriage return.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]"
)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words


def strip_userinfo(url: str) -> str:
    """The URL without `user:token@` (what may be printed of JENKINS_URL)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def scrub_urls(text: str) -> str:
    """Every `scheme://user:token@host` in the text with its userinfo removed."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme"), text)


def strip_control(text: str) -> str:
    """The text without terminal control sequences (colours, cursor moves, OSC titles and hyperlinks, bells)."""
    return _CONTROL.sub("", text)


def env_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a secret (JENKINS_TOKEN, AWS_SECRET_ACCESS_KEY)."""
    env = os.environ if env is None else env
    return [v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN]


def mask(text: str, secrets: Iterable[str]) -> str:
    """Each known secret replaced by ****, longest first (so one secret inside another leaves nothing)."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def safe_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text from another system, ready for our terminal or log: controls stripped, URLs and secrets scrubbed."""
    return mask(scrub_urls(strip_control(text)), [*secrets, *env_secrets()])
