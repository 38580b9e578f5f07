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
import errno
import hashlib
import os
import secrets
import socket
import stat
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


def real_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with its symbolic links resolved as far as they go; unlike
    ``Path.resolve()`` it never raises, also not for a symbolic link loop (see :func:`link_loop`)."""
    return Path(os.path.realpath(path))


def link_loop(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, or a folder on the way to it, is a symbolic link loop (the system's ELOOP: "too
    many levels of symbolic links"), which no file can be read from or written to."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    except ValueError:  # a NUL byte: not a loop (the open reports it)
        return False
    return False


def is_stream(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``-`` or something that can be read only once: a pipe (``/dev/stdin`` in a
    pipeline, the FIFO of a shell's ``<(...)``), a terminal or another device, a socket. Such an input is
    read once and its content kept; a regular file may be read again."""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


LOOP = "a symbolic link loop (too many levels of symbolic links)"
"""How an error names a path that :func:`link_loop` finds."""


def check_folder(folder: str | os.PathLike[str], error: type[InspatioError] = InputError,
                 what: str = "folder") -> Path:
    """A folder given as an argument, checked before any work: one that can be read, or one that does not
    exist yet (an output folder, a weights folder a download makes); ``error`` (e.g. :class:`WeightsError`
    for exit 4) naming ``what`` for a file, a symbolic link loop or a folder without read permission."""
    path = Path(folder)
    if link_loop(path):
        raise error(f"not a usable {what}: {LOOP}", path)
    if path.exists() and not path.is_dir():
        raise error(f"not a {what}: it is a file", path)
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise error(f"permission denied: the {what} cannot be read", path)
    return path


def _identities(path: Path) -> list[tuple]:
    """What makes two names the same file: the resolved path and, for an existing file, its device and
    inode (so a symbolic link or a hard link to a file is that file)."""
    keys: list[tuple] = [("path", real_path(path))]
    with contextlib.suppress(OSError, ValueError):
        found = path.stat()
        keys.append(("inode", found.st_dev, found.st_ino))
    return keys


class OutputClaims:
    """The outputs of one run, checked as they are planned, before any work: no output may be an input
    (``inputs``: path -> what it is, e.g. ``"the source video"``), another output of the run, or (unless
    ``overwrite``) a file that already exists; ``flag`` is the option that allows replacing files, named in
    the error. The folders the outputs go in are checked too: a folder to create may not be an existing
    file, an input or another output, and an output may not be a folder another output goes in; a path
    through a symbolic link loop is refused. :meth:`claim` returns the problem rather than raising it, so a
    batch can list every job's."""

    def __init__(self, inputs: dict[Path, str], *, overwrite: bool = False, flag: str = "--overwrite"):
        self.overwrite, self.flag = overwrite, flag
        self._inputs: dict[tuple, str] = {}
        for path, what in inputs.items():
            self._inputs.update(dict.fromkeys(_identities(Path(path)), what))
        self._claimed: dict[tuple, tuple[str, str]] = {}
        """Identity -> (its owner, what it is: e.g. ``"job 2's (line 3) sidecar"``)."""
        self._folders: dict[Path, str | None] = {}
        """Folder (resolved) -> None when it exists, else which output it is created for."""
        self._real: dict[Path, Path] = {}
        """Folder as written -> resolved (:meth:`_real_folder`)."""

    def claim(self, path: Path, what: str, owner: str | None = None) -> InspatioError | None:
        """Record ``path`` as the output ``what`` (e.g. ``"the sidecar"``) of ``owner`` (e.g. ``"job 2's"``,
        default: this run's ``what``); the error naming it when it would replace an input, is already
        another output of the run or a folder of one, exists, cannot be reached (a symbolic link loop:
        :class:`InputError`) or goes in a folder that cannot be made; None when it is free."""
        try:
            found: os.stat_result | None = os.stat(path)
        except OSError as exc:  # missing (or a file on the way: the folder check below says so)
            if exc.errno == errno.ELOOP:
                return InputError(f"{what} cannot be written: {LOOP}", path)
            if exc.errno == errno.EACCES:
                return InputError(f"{what} cannot be written: permission denied in its folder", path)
            found = None
        if found is not None and stat.S_ISDIR(found.st_mode):
            return UsageError(f"{what} is a folder; give a file name", path)
        link = os.path.islink(path)
        keys: list[tuple] = [("path", real_path(path) if link else self._real_folder(path.parent) / path.name)]
        if found is not None:
            keys.append(("inode", found.st_dev, found.st_ino))
        label = what if owner is None else f"{owner} {what.removeprefix('the ')}"
        for key in keys:
            if key in self._inputs:
                return UsageError(f"{what} would overwrite {self._inputs[key]}", path)
            if key in self._claimed:
                return UsageError(f"{what} is also {self._claimed[key][0]}; give each output its own name", path)
        if self._folders.get(keys[0][1]) is not None:
            return UsageError(f"{what} is the folder of {self._folders[keys[0][1]]}; give each output its own "
                              "name", path)
        problem = self._claim_folders(keys[0][1].parent, what, label)
        if problem is not None:
            return problem
        if not self.overwrite and (found is not None or link):
            return UsageError(f"{what} already exists (give {self.flag} to replace it)", path)
        self._claimed.update(dict.fromkeys(keys, (owner or what, label)))
        return None

    def _real_folder(self, folder: Path) -> Path:
        """:func:`real_path` of ``folder``, asked of the file system once per folder as written: a run's
        outputs mostly share a few folders."""
        if folder not in self._real:
            self._real[folder] = real_path(folder)
        return self._real[folder]

    def _claim_folders(self, folder: Path, what: str, label: str) -> InspatioError | None:
        """Record ``folder`` (resolved), where an output goes, and the folders above it up to the first that
        exists; the error when one of them is an existing file, an input or an output of the run, or the
        existing one may not be written in. Each folder is asked of the file system once."""
        made: list[Path] = []
        while folder not in self._folders:
            if folder.is_dir():
                if not os.access(folder, os.W_OK | os.X_OK):
                    return InputError(f"{what} cannot be written: permission denied in this folder", folder)
                self._folders[folder] = None
                break
            for key in _identities(folder):
                taken = self._inputs.get(key) or self._claimed.get(key, (None, None))[1]
                if taken is not None:
                    return UsageError(f"{what} needs this to be a folder, but it is {taken}", folder)
            if folder.exists():
                return InputError(f"cannot create the folder of {what}: it is a file", folder)
            made.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
        self._folders.update(dict.fromkeys(made, label))
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

