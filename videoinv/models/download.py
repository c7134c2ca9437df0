"""Resumable HTTP downloads with checksums, including Google Drive's confirmation step.

The file grows as ``<dest>.part`` next to its final name; an interrupted transfer resumes with a
``Range`` request (from a later call, or automatically within a call), a server that ignores the
range restarts it. The finished file is checked (size and sha256 when known) before it is moved
into place; a mismatch removes the partial file.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import VideoinvError

# "gdrive:<id>" URLs go here (Google Drive's direct-download endpoint)
GDRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
CHUNK = 1 << 20
USER_AGENT = "videoinv-weights/1"


class DownloadError(VideoinvError):
    """A transfer failed; the message says why and what to do instead."""


Progress = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


def resolve(url: str) -> str:
    if url.startswith("gdrive:"):
        return GDRIVE_URL.format(id=url.split(":", 1)[1])
    return url


class _Form(html.parser.HTMLParser):
    """The download form (or confirm link) of Google Drive's "can't scan for viruses" page."""

    def __init__(self):
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.link: str | None = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "a" and "confirm=" in (a.get("href") or "") and self.link is None:
            self.link = a["href"]

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _confirmation_url(page: str, base: str) -> str | None:
    form = _Form()
    form.feed(page)
    if form.action and form.fields:
        return urllib.parse.urljoin(base, form.action) + "?" + urllib.parse.urlencode(form.fields)
    if form.link:
        return urllib.parse.urljoin(base, html.unescape(form.link))
    return None


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _total(response, start: int) -> int | None:
    rng = response.headers.get("Content-Range")
    if rng and "/" in rng and not rng.endswith("/*"):
        return int(rng.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return int(length) + (start if response.status == 206 else 0) if length else None


def _transfer(url: str, part: Path, timeout: float, progress: Progress | None) -> None:
    """One attempt: append to ``part`` from where it stops (or restart if the server must)."""
    start = part.stat().st_size if part.exists() else 0
    for _ in range(3):  # the first page may be Google Drive's confirmation page
        try:
            response = _open(url, start, timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and start:  # nothing left to send: the part is complete
                return
            raise
        with response:
            ctype = response.headers.get("Content-Type", "")
            if ctype.startswith("text/html"):
                page = response.read(2 << 20).decode("utf-8", "replace")
                follow = _confirmation_url(page, response.geturl())
                if follow is None or follow == url:
                    raise DownloadError("the server sent a web page instead of the file (a Google Drive "
                                        "quota or permission page?)")
                url = follow
                continue
            if start and response.status != 206:  # range ignored: start again
                start = 0
            total = _total(response, start)
            with open(part, "ab" if start else "wb") as out:
                done = start
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                except http.client.IncompleteRead as err:  # the server hung up mid-file
                    out.write(err.partial)
                    raise ConnectionError(f"connection closed after {done + len(err.partial)} bytes") from None
                except http.client.HTTPException as err:
                    raise ConnectionError(f"transfer broken: {err!r}") from None
            if total is not None and done < total:
                raise ConnectionError(f"connection closed after {done} of {total} bytes")
            return
    raise DownloadError("too many redirections through confirmation pages")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, size: int | None = None,
             retries: int = 3, timeout: float = 30.0, progress: Progress | None = None) -> str:
    """Download ``url`` (``gdrive:<id>`` allowed) to ``dest``; returns the file's sha256."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    real = resolve(url)
    for attempt in range(retries + 1):
        try:
            _transfer(real, part, timeout, progress)
            break
        except DownloadError:
            raise
        except urllib.error.HTTPError as err:
            raise DownloadError(f"{urllib.parse.urlsplit(real).netloc} answered {err.code} {err.reason}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            got = part.stat().st_size if part.exists() else 0
            if attempt == retries or got == 0 and isinstance(err, urllib.error.URLError):
                host = urllib.parse.urlsplit(real).netloc
                hint = f"kept {got} bytes to resume" if got else "no network?"
                raise DownloadError(f"cannot download from {host}: {reason} ({hint})") from None
            time.sleep(min(2 ** attempt, 5) * 0.1)
    if size is not None and part.stat().st_size != size:
        actual = part.stat().st_size
        part.unlink()
        raise DownloadError(f"the download has {actual} bytes, expected {size}; the partial file was removed")
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise DownloadError(f"checksum mismatch (sha256 {digest[:16]}..., expected {sha256[:16]}...); "
                            "the partial file was removed")
    os.replace(part, dest)
    return digest
