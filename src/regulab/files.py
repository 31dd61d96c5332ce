"""Writing a file so that a crash leaves the old version or the new one, never half; and the
folder regulab caches parsed data and its registry of running trainings in. The bottom of
regulab's modules: it imports nothing of regulab's but its errors."""

from __future__ import annotations

import os
from pathlib import Path

from regulab.errors import RegulabError


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RegulabError(f"cannot write {path} ({exc.strerror or exc}); free some space or choose another --out") from None


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "regulab"


def between_markers(text: str, start: str, end: str, inside: str) -> str:
    """`text` with what lies between the line that holds `start` and the text `end` replaced by
    `inside`: a built section of a hand-written page (the README's findings, a benchmark's table)."""
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise RegulabError(f"the page has no section between {start!r} and {end!r}; restore its markers")
    marker_line, _, body = rest.partition("\n")
    return head + start + marker_line + "\n" + inside + end + body.partition(end)[2]
