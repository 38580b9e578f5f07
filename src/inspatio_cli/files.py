"""File helpers shared by every stage: atomic outputs, stale temp cleanup, content fingerprints.

Outputs are never written under their final name: a temporary file in the same folder receives the data
and is renamed (an atomic ``os.replace``) only once it is complete. Any exception, Ctrl-C or SIGTERM
removes the temporary file, and a SIGKILL leaves at most a temporary file that the next run removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
from pathlib import Path
from typing import Iterator

from .errors import InputError

TEMP_MARK = ".inspatio-tmp-"


def cache_dir(kind: str) -> Path:
    """The folder for cached results of one kind (``depth``, ``prompts``, ``captions``...), created.

    ``$INSPATIO_CACHE_DIR/<kind>`` if set, else ``$XDG_CACHE_HOME/inspatio/<kind>``, else
    ``~/.cache/inspatio/<kind>``.
    """
    root = os.environ.get("INSPATIO_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "inspatio")
    folder = Path(root) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def host_tag() -> str:
    """8 hex digits naming this machine (a hash of its host name): temporary files carry it, so that on a
    file system shared by several machines each one only removes its own."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_path_for(path: Path) -> Path:
    """A hidden temporary sibling of ``path`` that keeps its suffix (container formats depend on it), named
    after the process and machine that write it: ``.<stem>.inspatio-tmp-<pid>-<host tag>-<random><suffix>``."""
    token = f"{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.stem}{TEMP_MARK}{token}{path.suffix}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_temps(folder: Path) -> list[Path]:
    """Remove temporary files left in ``folder`` by processes of this machine that no longer run (those of
    other machines, e.g. the other shards of a batch on a shared file system, are left alone: their
    process ids mean nothing here); return what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    here = host_tag()
    for candidate in folder.glob(f".*{TEMP_MARK}*"):
        fields = candidate.name.split(TEMP_MARK, 1)[1].split("-")
        pid_text, elsewhere = fields[0], len(fields) > 2 and fields[1] != here
        if pid_text.isdigit() and not elsewhere and not _pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


class AtomicFile:
    """A temporary sibling of ``final`` that becomes ``final`` on :meth:`commit`, or vanishes on
    :meth:`discard`. The parent folder is created, and stale temporaries of dead processes in it are
    removed, when the object is made."""

    def __init__(self, final: str | os.PathLike[str]):
        self.final = Path(final)
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder should be, no permission, a read-only file system
            raise InputError(f"cannot create the output's folder ({exc.strerror or exc})", self.final.parent) from None
        cleanup_stale_temps(self.final.parent)
        self.tmp = temp_path_for(self.final)

    def commit(self) -> Path:
        """Atomically move the finished temporary file to the final name."""
        if not self.tmp.exists():
            raise FileNotFoundError(f"nothing was written to {self.tmp}")
        os.chmod(self.tmp, 0o666 & ~_umask())
        os.replace(self.tmp, self.final)
        return self.final

    def discard(self) -> None:
        """Delete the temporary file if it exists."""
        with contextlib.suppress(OSError):
            self.tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any failure (exception,
    Ctrl-C, SIGTERM) it is deleted."""
    target = AtomicFile(path)
    try:
        yield target.tmp
        target.commit()
    except BaseException:
        target.discard()
        raise


def fingerprint_file(path: str | os.PathLike[str], sample_bytes: int = 1 << 22) -> str:
    """A content fingerprint of a (possibly huge) file, for cache keys.

    SHA-256 over the file size and three samples of ``sample_bytes`` (start, middle, end); files up to
    three samples long are hashed whole. Renaming or copying a file keeps its fingerprint; editing
    any sampled region or changing its length changes it. Returned as 16 hex characters.
    """
    p = Path(path)
    size = p.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with p.open("rb") as fh:
        if size <= 3 * sample_bytes:
            digest.update(fh.read())
        else:
            for offset in (0, size // 2 - sample_bytes // 2, size - sample_bytes):
                fh.seek(offset)
                digest.update(fh.read(sample_bytes))
    return digest.hexdigest()[:16]

