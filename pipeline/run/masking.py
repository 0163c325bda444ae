"""Keep secrets out of logs and reports: values of secret-looking variables become ***.

A value is secret when its variable's name looks like one (`*TOKEN*`, `*SECRET*`,
`*PASSWORD*`, `*PASSWD*`, `*CREDENTIAL*`, `*_KEY`, `KEY`, `*API_KEY*`, `*PRIVATE_KEY*`, any
case), when the variable is listed in a job's `secrets:` (passed from the environment of
`pipeline`), or when it is the password of a proxy URL (`http://user:PASSWORD@proxy`).
Values shorter than MIN_LENGTH characters are not masked (they would hide unrelated text);
each line of a multi-line value is masked on its own. The masked forms include the value
as JSON and as XML escape it, so serialized reports are covered too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

MASK = "***"
MIN_LENGTH = 4
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_?KEY|_KEY$|^KEY$", re.IGNORECASE)
URL_NAMES = re.compile(r"PROXY|_URL$|^URL$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says its value is a secret."""
    return bool(SECRET_NAME.search(name))


def url_password(value: str) -> str | None:
    """The password in a URL's user info (`scheme://user:password@host`), if any."""
    if "@" not in value or "://" not in value:
        return None
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return None
    return password or None


def _xml_escape(text: str) -> str:
    """xml.sax.saxutils.escape() without its import (which loads urllib.request)."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


class Masker:
    """Replaces known secret values (and their JSON / XML escaped forms) with ***."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """Treat `value` as a secret (each of its lines, if it has several)."""
        parts = [value, *(line.strip() for line in value.splitlines())]
        for part in parts:
            if len(part) < MIN_LENGTH:
                continue
            self._values.add(part)
            self._values.add(_xml_escape(part).replace('"', "&quot;").replace("'", "&apos;"))
            self._values.add(_xml_escape(part))
            self._values.add(json.dumps(part)[1:-1])
        self._ordered = sorted(self._values, key=len, reverse=True)

    def add_env(self, env: Mapping[str, str], secret_names: Iterable[str] = ()) -> None:
        """The secrets of an environment: by name, listed names, and proxy passwords."""
        listed = set(secret_names)
        for name, value in env.items():
            if name in listed or is_secret_name(name):
                self.add(value)
            elif URL_NAMES.search(name) and (password := url_password(value)):
                self.add(password)
                self.add(unquote(password))

    def __bool__(self) -> bool:
        return bool(self._values)

    def hides(self, text: str) -> bool:
        """Whether `text` contains a secret."""
        return any(value in text for value in self._values)

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by ***."""
        if not self._values or not text:
            return text
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text
