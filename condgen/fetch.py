"""Download a declared weight file on request: resumable, checked by SHA-256, never kept when wrong.

`fetch(weight_file)` writes `<file>.part` beside the destination (torch.hub's checkpoint folder), resumes it
with an HTTP Range request when a transfer stops early (or restarts from zero when the server ignores the
range), checks the SHA-256 of the whole file and only then renames it into place, so the destination holds
the published file or nothing. A wrong file is deleted; an interrupted one stays as `.part` for the next fetch
to resume and is never read as weights.

Sources, in order: `mirror=` or $CONDGEN_WEIGHTS_MIRROR (a base URL or a folder; a file is looked up by its
canonical file name under it, for clusters without internet), else the file's published URL. Offline mode
($CONDGEN_OFFLINE=1, or $HF_HUB_OFFLINE=1 as huggingface_hub users already set) refuses every network
transfer; a mirror that is a local folder or a `file://` URL still works.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from condgen.version import __version__
from condgen.weights import WeightFile, WeightsMismatchError, sha256_file

MIRROR_ENV = "CONDGEN_WEIGHTS_MIRROR"
OFFLINE_ENVS = ("CONDGEN_OFFLINE", "HF_HUB_OFFLINE")
_CHUNK = 1 << 20


class WeightsFetchError(RuntimeError):
    """A weight file could not be downloaded (offline, unreachable, refused); the message says what to do."""


class _Incomplete(Exception):
    """The server closed the connection before the announced length arrived."""


def offline() -> str | None:
    """The environment variable that switches network transfers off, or None when they are allowed."""
    for var in OFFLINE_ENVS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def source_url(weight_file: WeightFile, mirror: str | None = None) -> str:
    """Where a fetch reads the file: `mirror` (or $CONDGEN_WEIGHTS_MIRROR) / file name, else its URL."""
    base = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if base is None:
        return weight_file.url
    if "://" not in base:  # a folder on a shared file system
        base = Path(base).expanduser().resolve().as_uri()
    return f"{base.rstrip('/')}/{urllib.parse.quote(weight_file.filenames[0])}"


def fetch(
    weight_file: WeightFile,
    *,
    mirror: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download one file into its destination and return the verified path.

    Args:
        mirror: a base URL or folder to read the file from (default $CONDGEN_WEIGHTS_MIRROR, else the
            published URL).
        force: download even when a verified file is already there.
        progress: show a tqdm bar (None: only on a terminal).
        retries: how many times an interrupted transfer is resumed before giving up.
        timeout: seconds a connection may stay silent.
    """
    dest = weight_file.destination()
    if dest.is_file() and not force and weight_file.matches(sha256_file(dest)):
        return dest
    url = source_url(weight_file, mirror)
    where = f"put {weight_file.filenames[0]} at {dest} by hand"
    if not url.startswith("file:") and (var := offline()):
        raise WeightsFetchError(
            f"{weight_file.filenames[0]}: not fetched, offline mode is on (${var}); unset it, point "
            f"${MIRROR_ENV} at a local folder holding the file, or {where}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            _transfer(url, part, progress=progress, timeout=timeout, label=weight_file.filenames[0])
            break
        except urllib.error.HTTPError as e:
            raise WeightsFetchError(
                f"{weight_file.filenames[0]}: {url} answered HTTP {e.code} ({e.reason}); "
                f"check the URL or the mirror, or {where}"
            ) from e
        except (_Incomplete, http.client.HTTPException, urllib.error.URLError, OSError) as e:
            last = e  # resumed from the bytes already in `part` on the next round
    else:
        have = part.stat().st_size if part.exists() else 0
        if not have:
            part.unlink(missing_ok=True)
            raise WeightsFetchError(
                f"{weight_file.filenames[0]}: could not read {url} ({last}, {retries + 1} tries); check the "
                f"network, or serve the file from a mirror (${MIRROR_ENV} or --mirror), or {where}"
            ) from last
        raise WeightsFetchError(
            f"{weight_file.filenames[0]}: the transfer from {url} failed {retries + 1} times ({last}); "
            f"{have} bytes are kept in {part} and the next `{weight_file.fetch_command}` resumes them, "
            f"or {where}"
        ) from last
    digest = _sha256(part)
    if not weight_file.matches(digest):
        part.unlink()
        raise WeightsMismatchError(
            f"{weight_file.filenames[0]} from {url}: SHA-256 {digest}, expected {weight_file.sha256} "
            f"(published for {weight_file.what}); the download was deleted, nothing was kept at {dest}"
        )
    os.replace(part, dest)  # atomic within one folder: the destination is the whole file or absent
    return dest


def _transfer(url: str, part: Path, *, progress: bool | None, timeout: float, label: str) -> None:
    """Append the rest of `url` to `part` (Range from its size), or rewrite it when the server sends all."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"condgen/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range starts at or past the end: the part is unusable, start over
            part.unlink()
            raise _Incomplete(f"{part} did not fit the file on the server; restarting") from e
        raise
    from tqdm.auto import tqdm

    with response:
        if response.headers.get_content_type() == "text/html":
            raise urllib.error.HTTPError(url, 415, "a web page came back instead of the file", None, None)
        resumed = have > 0 and getattr(response, "status", None) == 206
        length = response.headers.get("Content-Length")
        total = int(length) + (have if resumed else 0) if length is not None else None
        done = have if resumed else 0
        with (
            part.open("ab" if resumed else "wb") as f,
            tqdm(
                total=total, initial=done, unit="B", unit_scale=True, desc=label, disable=_quiet(progress)
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    if total is not None and done < total:
        raise _Incomplete(f"the connection closed after {done} of {total} bytes")


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # tqdm: None = show only on a terminal


def _sha256(path: Path) -> str:
    """Not the memoised `sha256_file`: a `.part` keeps its name while its content changes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
