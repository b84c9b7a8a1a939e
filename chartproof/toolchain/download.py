"""Fetch a tool's official release binary and verify it against the published checksum.

Any network failure is reported as ``DownloadUnavailable`` so the resolver can fall back to a Go
build; a checksum mismatch is an error (never silently fall back past a tampered file).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from chartproof.errors import ToolchainError
from chartproof.progress import Progress
from chartproof.toolchain.pins import ToolPin

CONNECT_TIMEOUT = float(os.environ.get("CHARTPROOF_DOWNLOAD_TIMEOUT", "8"))


class DownloadUnavailable(Exception):
    """The release host could not be reached (this machine's network, a proxy, a 404)."""


def _fetch(url: str, progress: Progress | None = None) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            chunks, got = [], 0
            while chunk := resp.read(1 << 20):
                chunks.append(chunk)
                got += len(chunk)
                if progress:
                    progress.update(f"{got >> 20} MiB" + (f" of {total >> 20} MiB" if total else ""))
            return b"".join(chunks)
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        raise DownloadUnavailable(f"{url}: {exc}") from exc


def expected_sha256(checksum_text: str, filename: str) -> str:
    """The digest for ``filename`` in a ``sha256sum``-style file, or the lone digest of a ``.sha256`` file."""
    lines = [ln.split() for ln in checksum_text.strip().splitlines() if ln.strip()]
    for parts in lines:
        if len(parts) >= 2 and parts[-1].lstrip("*") == filename:
            return parts[0].lower()
    if len(lines) == 1 and len(lines[0]) in (1, 2):
        return lines[0][0].lower()
    raise ToolchainError(f"no checksum for {filename} in the published checksum file")


def download_binary(pin: ToolPin, dest: Path, progress: Progress) -> None:
    """Write the verified binary to ``dest`` (a temporary path the caller moves into the cache)."""
    url, sum_url = pin.download_url, pin.checksum_url
    if not url or not sum_url:
        raise DownloadUnavailable(f"{pin.name} publishes no checksummed release binary")
    progress.update(f"checksum {sum_url}")
    sums = _fetch(sum_url).decode()
    progress.update(f"GET {url}")
    payload = _fetch(url, progress)
    want = expected_sha256(sums, url.rsplit("/", 1)[-1])
    got = hashlib.sha256(payload).hexdigest()
    if got != want:
        raise ToolchainError(f"{pin.name} {pin.version}: checksum mismatch for {url} (got {got}, published {want})")
    if pin.archive_member:
        member = pin.expand(pin.archive_member)
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ToolchainError(f"{pin.name}: {member} is not in {url}")
            payload = extracted.read()
    dest.write_bytes(payload)
    dest.chmod(0o755)
