"""All-or-nothing outputs: the files of one job (one video's .mp4/.mid/.wav/.json/.png, or one
`vbgm compose`) appear together or not at all.

- Each output is written to a recognisable temporary file in its own folder
  (`.NAME.vbgm-tmp-PID-TOKEN.SUFFIX`, see `vbgm.atomic`) and renamed into place only when every
  output of the job has been written and synced. Any failure, Ctrl-C or SIGTERM (which raises
  `Terminated` while a transaction is open, or through a whole job in `stops_raise`) removes the
  temporaries, and no transaction commits after a stop whose exception library code swallowed;
  those of a process killed with `kill -9` are recognised by their dead PID and removed by the
  next run in that folder.
- Overwrite protection holds at write time, not only at the start: each output is guarded by a
  lock file `.NAME.vbgm-lock` (flock, so the kernel releases it when its process dies, even on
  `kill -9`), and without `force` the final rename is an exclusive hard link. Of two runs writing
  the same output without --force exactly one succeeds; the other says why.
- `check_destination` refuses, in one line naming the folder, a destination that cannot be
  written or lacks room, before the expensive work starts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from vbgm.atomic import TEMP_TAG, make_temp, remove_stale
from vbgm.errors import VbgmError, WriteError, reason

RESERVE_BYTES = 50 * 2**20  # free space wanted besides twice the input's size
LOCK_TAG = ".vbgm-lock"
# Errors that only writing can cause: reported as "cannot write OUTPUT: ...".
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                          errno.EPERM})


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the stack like Ctrl-C, so that temporaries are removed."""


# The stops received during a job (`stops_raise`: SIGTERM's `Terminated`, Ctrl-C's
# KeyboardInterrupt), process-wide like the signals: no transaction of the job commits after
# one, even where the exception its handler raised was swallowed (seen: raised inside an import
# numpy ran lazily from C code, after which the job went on to write its outputs).
_STOPS: list[type[BaseException]] = []
# Open `stops_held` blocks: a job's stop is only remembered there, and raised when they end.
_HELD: list[None] = []


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise Terminated()


def _remember_terminated(signum: int, frame: object) -> None:
    _STOPS.append(Terminated)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    if not _HELD:
        raise Terminated()


def _remember_interrupt(signum: int, frame: object) -> None:
    _STOPS.append(KeyboardInterrupt)
    if not _HELD:
        raise KeyboardInterrupt()


@contextlib.contextmanager
def stops_held() -> Iterator[None]:
    """Inside a job (`stops_raise`), a stop that arrives in this block is raised when it ends:
    a file made here and recorded for removal is never left between the two steps (seen: Ctrl-C
    between the creation and the removal of the destination probe left it behind)."""
    before = len(_STOPS)
    _HELD.append(None)
    try:
        yield
    finally:
        _HELD.pop()
        if not _HELD and len(_STOPS) > before:
            # The stop, not an error it interrupted (the cause, if any), ends the job.
            raise _STOPS[-1]() from sys.exc_info()[1]


def _sigterm_raises() -> tuple[bool, object]:
    """Make SIGTERM raise `Terminated` (main thread only, and not inside a job, whose handler
    already does): (installed, handler to restore)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is _remember_terminated):
        return False, None
    return True, signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def stops_raise() -> Iterator[None]:
    """A whole job (main thread; elsewhere nothing): SIGTERM raises `Terminated` and Ctrl-C
    KeyboardInterrupt (unless ignored) from its start, so that a stop before its transaction
    opens ends it as cleanly as one during it, and both are remembered until the job ends: no
    transaction commits after one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOPS.clear()
    previous = signal.signal(signal.SIGTERM, _remember_terminated)
    interrupt = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if interrupt:
        signal.signal(signal.SIGINT, _remember_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if interrupt:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _STOPS.clear()


def room_for(inputs: Iterable[Path] = (), extra_bytes: int = 0) -> int:
    """Bytes a job should find free: RESERVE_BYTES + twice the inputs' size (+ extra_bytes)."""
    return RESERVE_BYTES + extra_bytes + 2 * sum(p.stat().st_size for p in inputs
                                                 if p.is_file())


def _existing(folder: Path) -> Path:
    """`folder` or its nearest existing ancestor."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_destination(folder: Path, need_bytes: int = RESERVE_BYTES) -> None:
    """Refuse, with one line naming `folder`, a destination we cannot write to (read-only, not a
    folder, no permission: tried for real, since root passes os.access) or that has less than
    `need_bytes` free. A missing folder is judged by the ancestor it would be created in."""
    for attempt in range(5):
        base = _existing(folder)
        if not base.is_dir():
            if not base.exists() and attempt < 4:  # a concurrent run removed a folder it made
                continue
            raise VbgmError(f"{folder}: not a folder" if base == folder.absolute() else
                            f"{folder}: cannot create this folder ({base} is not a folder)")
        try:
            with stops_held():
                os.unlink(make_temp(base / ".vbgm-probe"))
            free = shutil.disk_usage(base).free
            break
        except FileNotFoundError as exc:  # a concurrent run removed a folder it had made
            if attempt == 4:
                raise VbgmError(f"{folder}: cannot write in this folder ({reason(exc)})") from exc
        except OSError as exc:
            raise VbgmError(f"{folder}: cannot write in this folder ({reason(exc)})") from exc
    if free < need_bytes:
        raise VbgmError(f"{folder}: not enough free space ({free / 2**20:.0f} MB free, about "
                        f"{need_bytes / 2**20:.0f} MB needed)")


def check_destinations(paths: Iterable[Path], need_bytes: int = RESERVE_BYTES) -> None:
    """`check_destination` of the folder of each path (each folder once)."""
    for folder in dict.fromkeys(Path(p).absolute().parent for p in paths):
        check_destination(folder, need_bytes)


def check_targets(inputs: Sequence[Path], targets: Sequence[Path], force: bool) -> None:
    """Refuse, before any work, targets that are inputs, repeat, are not regular files, or exist
    (unless `force`)."""
    ins = {p.resolve() for p in inputs}
    seen: set[Path] = set()
    for p in targets:
        r = p.resolve()
        if r in ins or any(p.exists() and i.exists() and os.path.samefile(p, i) for i in inputs):
            raise VbgmError(f"{p}: refusing to overwrite an input file")
        if r in seen:
            raise VbgmError(f"{p}: the same output is asked for twice")
        seen.add(r)
        _check_existing(p, force)


def _check_existing(p: Path, force: bool) -> None:
    if p.exists() or p.is_symlink():
        if not p.is_file():
            raise VbgmError(f"{p}: exists and is not a regular file")
        if not force:
            raise VbgmError(f"{p}: already exists (use --force to overwrite)")


def lock_path(target: Path) -> Path:
    """The lock file that guards `target`."""
    return target.parent / f".{target.name}{LOCK_TAG}"


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those this call made (not those a
    concurrent run made at the same moment), outermost first."""
    missing, up = [], folder
    while not up.exists():
        missing.append(up)
        up = up.parent
    made = []
    for d in reversed(missing):
        try:
            d.mkdir()
            made.append(d)
        except FileExistsError:
            pass
    return made


class _Lock:
    """An flock on `.NAME.vbgm-lock`, holding our PID (for the message of a run that loses)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = lock_path(target)
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise VbgmError naming the run that holds it."""
        tries = 0
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                tries += 1
                if not owner.isdigit() and tries < 50:  # a holder that has not written its PID
                    time.sleep(0.01)  # yet, or `remove_stale_locks` looking: a moment
                    continue
                raise VbgmError(
                    f"{self.target}: another vbgm run is writing it"
                    + (f" (pid {owner})" if owner.isdigit() else "")
                    + "; wait for it to finish or choose another output") from None
            if _same_file(fd, self.path):  # not unlinked by its last holder since we opened it
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file, then let go of it."""
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still holding it, so no one else holds this file
        os.close(self.fd)
        self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def remove_stale_locks(folder: Path) -> None:
    """Remove lock files in `folder` that no live process holds (left by `kill -9`)."""
    try:
        names = [e.name for e in os.scandir(folder) if e.name.endswith(LOCK_TAG)]
    except OSError:
        return
    for name in names:
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                os.unlink(path)
        except OSError:  # held by a live run, or gone meanwhile
            pass
        finally:
            os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Transaction:
    """Write the outputs of one job all together or not at all.

    Use as `with Transaction(targets, force) as tx:`, write each target's content to
    `tx.path(target)`, then call `tx.commit()`. Leaving the block without a commit (an exception,
    Ctrl-C, SIGTERM) removes every temporary and leaves existing targets as they were. OS errors
    inside the block come out as one `WriteError` naming the output (not its temporary).
    """

    def __init__(self, targets: Sequence[str | os.PathLike[str]], force: bool = False,
                 need_bytes: int = RESERVE_BYTES) -> None:
        self.targets = [Path(t) for t in targets]
        self.force = force
        self.need_bytes = need_bytes
        self._temps: dict[Path, Path] = {}
        self._locks: list[_Lock] = []
        self._made: list[Path] = []
        self._active: Path | None = None
        self._committed = False
        self._sigterm: tuple[bool, object] = (False, None)

    def __enter__(self) -> Transaction:
        self._sigterm = _sigterm_raises()
        try:
            self._begin()
        except BaseException:
            self._finish()
            raise
        return self

    def _begin(self) -> None:
        self._open(self.targets)

    def add(self, targets: Sequence[str | os.PathLike[str]]) -> None:
        """Add outputs known only once the work is under way (the stems of the instruments that
        played): locked, checked and given temporaries like the first ones."""
        new = [Path(t) for t in targets]
        self.targets.extend(new)
        self._open(new)

    def _open(self, targets: list[Path]) -> None:
        """Create the folders of `targets`, lock them, check them again and make temporaries."""
        for folder in dict.fromkeys(t.absolute().parent for t in targets):
            check_destination(folder, self.need_bytes)
            self._made += make_folders(folder)
            remove_stale(folder)
            remove_stale_locks(folder)
        for t in sorted(targets):
            lock = _Lock(t)
            with stops_held():  # made and recorded as one step
                for _ in range(5):  # a concurrent run that fails may remove a folder it made
                    try:
                        lock.acquire()
                        break
                    except FileNotFoundError:
                        self._made += make_folders(t.absolute().parent)
                else:
                    lock.acquire()
                self._locks.append(lock)
            _check_existing(t, self.force)  # again, now that no other vbgm run can write it
        for t in targets:
            with stops_held():
                self._temps[t] = make_temp(t)

    def path(self, target: str | os.PathLike[str]) -> Path:
        """The temporary file to write `target`'s content to."""
        self._active = Path(target)
        return self._temps[self._active]

    def commit(self) -> None:
        """Sync every temporary, then rename each into place. Without `force` the rename is an
        exclusive link, so a file that appeared meanwhile is never replaced."""
        if _STOPS:  # a stop whose exception did not reach us
            raise _STOPS[0]()
        for t, tmp in self._temps.items():
            self._active = t
            _fsync(tmp)
        placed: list[Path] = []
        try:
            for t, tmp in self._temps.items():
                self._active = t
                self._place(tmp, t)
                placed.append(t)
        except BaseException:
            for t in placed:  # not half a set: without force these were new files
                with contextlib.suppress(OSError):
                    t.unlink()
            raise
        for folder in dict.fromkeys(t.absolute().parent for t in self.targets):
            with contextlib.suppress(OSError):  # not every file system syncs folders
                _fsync(folder)
        self._committed = True

    def _place(self, tmp: Path, target: Path) -> None:
        if self.force:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise VbgmError(f"{target}: already exists (use --force to overwrite)") from None
        except OSError as exc:  # no hard links here (FAT, some FUSE): our lock still guards it
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            _check_existing(target, False)
            os.rename(tmp, target)
            return
        os.unlink(tmp)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finish()
        if exc is not None:
            error = self._write_error(exc)
            if error is not None:
                raise error from exc

    def _finish(self) -> None:
        """Remove the temporaries (unless committed), release the locks, remove the folders we
        made if they stayed empty."""
        if not self._committed:
            for tmp in self._temps.values():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        for lock in self._locks:
            lock.release()
        self._locks.clear()
        if not self._committed:
            for d in reversed(self._made):
                with contextlib.suppress(OSError):
                    d.rmdir()
        installed, previous = self._sigterm
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            self._sigterm = (False, None)

    def _write_error(self, exc: BaseException) -> WriteError | None:
        """`exc` as a WriteError naming our output, or None when it is not a write failure."""
        if isinstance(exc, WriteError):
            target = self._target_of(exc.path)
            return WriteError(target, exc.why) if target and str(target) != exc.path else None
        if not isinstance(exc, OSError) or exc.errno is None:
            return None
        name = exc.filename
        target = self._target_of(os.fsdecode(name)) if name is not None else None
        if target is None and (name is not None or exc.errno not in WRITE_ERRNOS):
            return None
        return WriteError(target or self._active or self.targets[0], reason(exc))

    def _target_of(self, path: str) -> Path | None:
        """The target whose temporary (or a temporary of that temporary) is `path`."""
        name = Path(path).name
        for t, tmp in self._temps.items():
            if name == t.name or name == tmp.name or (
                    name.startswith(f".{tmp.name}{TEMP_TAG}")):
                return t
        return None
