"""Credentials in URLs: never printed, logged or stored.

A user may put credentials in a URL (`https://user:password@mlflow.example`, `...?token=...`). Every URL the
project prints, logs or writes goes through `redact_url`, which replaces the user info and token-like query
values by `***`. Health checks send credentials as an Authorization header instead (`authorized_request`),
because `urllib` reads `user:password@host` as part of the host name.
"""

from __future__ import annotations

import base64
import re
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
USER_INFO_RE = re.compile(r"^([A-Za-z][\w+.-]*://)[^/?#]*@")  # scheme://user:password@
# Query values whose names say they are secrets (`?token=`, `?api_key=`, `?X-Amz-Signature=`, `?password=`).
SECRET_QUERY_RE = re.compile(
    r"([?&][^=&#]*(?:token|key|secret|password|passwd|signature|sig|auth|credential)[^=&#]*=)[^&#]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """`url` with its user info and secret query values replaced by `***`; other text is left alone.

    >>> redact_url("https://alice:s3cret@mlflow.example:5000/api?token=abc&page=2")
    'https://***@mlflow.example:5000/api?token=***&page=2'
    >>> redact_url("sqlite:///mlruns.db")
    'sqlite:///mlruns.db'
    """
    return SECRET_QUERY_RE.sub(rf"\g<1>{MASK}", USER_INFO_RE.sub(rf"\g<1>{MASK}@", url))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(the URL without user info, the user name, the password); None where the URL holds none.

    >>> split_credentials("http://u:p%40ss@127.0.0.1:5000")
    ('http://127.0.0.1:5000', 'u', 'p@ss')
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    password = None if parts.password is None else unquote(parts.password)
    return clean, None if parts.username is None else unquote(parts.username), password


def authorized_request(
    url: str, username: str | None = None, password: str | None = None, token: str | None = None
) -> urllib.request.Request:
    """A GET request for `url` with credentials as a header: those in the URL's user info, else the
    given user name and password (basic auth), else a bearer `token`."""
    clean, url_user, url_password = split_credentials(url)
    username, password = (url_user, url_password) if url_user is not None else (username, password)
    request = urllib.request.Request(clean)
    if username is not None:
        pair = f"{username}:{password or ''}".encode()
        request.add_header("Authorization", f"Basic {base64.b64encode(pair).decode()}")
    elif token:
        request.add_header("Authorization", f"Bearer {token}")
    return request
