"""What an HTTP server says of a URL, asked once with a short timeout, for what OpenCV cannot
tell: why a stream URL did not open (404, 401, nothing listening), and whether a URL that sent
one picture serves a single image (a camera's snapshot) or a stream; and how a stream URL is
shown without its password. Standard library only."""

from __future__ import annotations

import base64
import http.client
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

logger = logging.getLogger(__name__)

HTTP_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class HttpAnswer:
    """The status line and content type of a server's answer (its body is never read)."""

    status: int
    reason: str
    content_type: str
    location: str = ""  # where a redirect points (it is not followed: see ask)

    @property
    def streams(self) -> bool:
        """The answer is a stream of pictures (MJPEG's multipart/x-mixed-replace)."""
        return self.content_type.startswith("multipart/")

    def describe(self, credentials: bool = False) -> str:
        """``404 Not Found``, with a hint where the status says what to fix; ``credentials``: the
        URL carried a user name and password already."""
        text = f"{self.status} {self.reason}".strip()
        if self.status in (401, 403):
            if credentials:
                return f"{text}; check the user name and password in the URL, and that this user may watch"
            return f"{text}; the URL may need a user name and password (http://user:password@host/...)"
        if self.status >= 500:
            return f"{text}; the server failed: check the camera or server itself, or try again later"
        if self.status == 404:
            return f"{text}; check the URL's path"
        if 300 <= self.status < 400:
            return f"{text}, a redirect to {shown(self.location) or 'nowhere'}; give that URL itself"
        return text


#: scheme://user:password@ — up to the last '@', so a password holding '/' or '@', or a URL
#: that does not parse, still loses it (masking a little more than the password is harmless).
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:/{1,2}[^:/@]*):.*@", re.DOTALL)


def shown(url: str) -> str:
    """``url`` as edgerun shows it (log lines, messages, records' ``source``): a password in it
    (``rtsp://user:secret@camera/...``, as cameras take them) replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1:***@", url)


def is_http(target) -> bool:
    return isinstance(target, str) and target.lower().startswith(HTTP_SCHEMES)


def ask(url: str, timeout: float = 2.0) -> HttpAnswer | str:
    """GET ``url`` and read only the answer's headers.

    Returns:
        The :class:`HttpAnswer`, or why there was none (``connection refused``, ``timed out``).
    """
    try:
        request = _request(url)
        opener = urllib.request.build_opener(_Unfollowed)  # the credentials go to this URL's host only
        with opener.open(request, timeout=timeout) as response:
            return HttpAnswer(response.status, response.reason, response.headers.get_content_type())
    except urllib.error.HTTPError as exc:  # 4xx, 5xx, and the redirects not followed
        headers = exc.headers
        content_type = headers.get_content_type() if headers else ""
        return HttpAnswer(exc.code, str(exc.reason), content_type, (headers.get("Location") or "") if headers else "")
    except urllib.error.URLError as exc:
        reason = exc.reason
        return getattr(reason, "strerror", None) or str(reason)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        logger.debug("%s: no HTTP answer", url, exc_info=True)
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class _Unfollowed(urllib.request.HTTPRedirectHandler):
    """Redirects are answers, not followed: urllib would send the Basic credentials of the first
    URL on to whatever host the redirect names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913 - urllib's signature
        return None


def _request(url: str) -> urllib.request.Request:
    """A GET of ``url``; a user:password@host in it becomes the Basic authorization cameras take."""
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "edgerun"}
    if parts.username is not None:
        login = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode("ascii")
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return urllib.request.Request(url, headers=headers)
