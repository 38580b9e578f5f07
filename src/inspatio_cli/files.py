"""File helpers shared by every stage: atomic outputs, the outputs' checks, stale temp cleanup, content
fingerprints.

Outputs are never written under their final name: a temporary file in the same folder receives the data
and is renamed (an atomic ``os.replace``) only once it is complete. Any exception, Ctrl-C or SIGTERM
removes the temporary file, and a SIGKILL leaves at most a temporary file that the next run removes.
Before any work, a run checks all its outputs at once (:class:`OutputClaims`): none replaces a file that
exists (unless the user said so), an input, or another output of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
from pathlib import Path
from typing import Iterable, Iterator

from .errors import InputError, InspatioError, UsageError

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


def _identities(path: Path) -> list[tuple]:
    """What makes two names the same file: the resolved path and, for an existing file, its device and
    inode (so a symbolic link or a hard link to a file is that file)."""
    keys: list[tuple] = [("path", path.resolve())]
    with contextlib.suppress(OSError):
        found = path.stat()
        keys.append(("inode", found.st_dev, found.st_ino))
    return keys


class OutputClaims:
    """The outputs of one run, checked as they are planned, before any work: no output may be an input
    (``inputs``: path -> what it is, e.g. ``"the source video"``), another output of the run, or (unless
    ``overwrite``) a file that already exists; ``flag`` is the option that allows replacing files, named in
    the error. :meth:`claim` returns the problem rather than raising it, so a batch can list every job's."""

    def __init__(self, inputs: dict[Path, str], *, overwrite: bool = False, flag: str = "--overwrite"):
        self.overwrite, self.flag = overwrite, flag
        self._inputs: dict[tuple, str] = {}
        for path, what in inputs.items():
            self._inputs.update(dict.fromkeys(_identities(Path(path)), what))
        self._claimed: dict[tuple, str] = {}

    def claim(self, path: Path, what: str, owner: str | None = None) -> InspatioError | None:
        """Record ``path`` as the output ``what`` (e.g. ``"the sidecar"``) of ``owner`` (e.g. ``"job 2's"``,
        default: this run's ``what``); the :class:`UsageError` naming it when it would replace an input, is
        already another output of the run, or exists; None when it is free."""
        keys = _identities(path)
        for key in keys:
            if key in self._inputs:
                return UsageError(f"{what} would overwrite {self._inputs[key]}", path)
            if key in self._claimed:
                return UsageError(f"{what} is also {self._claimed[key]}; give each output its own name", path)
        if not self.overwrite and (path.exists() or path.is_symlink()):
            return UsageError(f"{what} already exists (give {self.flag} to replace it)", path)
        self._claimed.update(dict.fromkeys(keys, owner or what))
        return None


def check_outputs(outputs: Iterable[tuple[Path, str]], inputs: dict[Path, str], *, overwrite: bool = False,
                  flag: str = "--overwrite") -> None:
    """Raise the first problem :class:`OutputClaims` finds with the run's ``outputs`` (path, what it is)."""
    claims = OutputClaims(inputs, overwrite=overwrite, flag=flag)
    for path, what in outputs:
        problem = claims.claim(Path(path), what)
        if problem is not None:
            raise problem


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

