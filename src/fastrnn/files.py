"""Files written whole or not at all: the one way fastrnn writes a file (models, weights, ONNX
graphs, plots, benchmark reports); and the one way a reader of such files reports one it cannot
read. It sits below every module that writes, and imports nothing of fastrnn's."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

try:
    import fcntl
except ImportError:  # not POSIX: folders cannot be locked, and so are never cleaned
    fcntl = None


class NotThisKind(ValueError):
    """Raised by a reader: the file is not of the kind it reads at all (not a damaged one)."""


@contextlib.contextmanager
def reading(path: str, kind: str, damage: tuple):
    """Turn what reading ``path`` as a ``kind`` file raises into a ValueError naming the file:
    "is not a <kind> file" for NotThisKind, "is not a readable <kind> file" for the exceptions in
    ``damage`` (what the parsers involved raise on damaged bytes). A file missing or out of
    reach, and a ValueError that already begins with ``path``, go through unchanged."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except NotThisKind as err:
        raise ValueError(f"{path} is not a {kind} file: {err}") from None
    except damage as err:
        if isinstance(err, ValueError) and str(err).startswith(path):
            raise
        raise ValueError(f"{path} is not a readable {kind} file: {err}") from err


def write_atomically(path: str, write) -> None:
    """Call ``write(f)`` on a new binary file beside ``path`` and rename it over ``path``: the
    file at ``path`` is then the whole of what ``write`` wrote, or as it was before. A symbolic
    link keeps pointing where it did, and the file it points to is the one replaced.

    The new file is hidden, ``.<name>.<random>.fastrnn.tmp``. A write that is killed leaves it
    behind; the next write in that folder removes every such file, once no other write (in
    this process or another) is under way there: writers hold a shared lock on the folder
    (``flock``) from before their file exists until it is renamed, and the cleaner needs the
    lock exclusively. Where the folder cannot be locked (no ``fcntl``, some network file
    systems) nothing is removed.

    A target that exists and is not a regular file (``/dev/null``, a pipe, a terminal) is written
    to directly: renaming over it would replace the device or pipe itself."""
    if is_special_file(path):
        with open(path, "wb") as f:
            write(f)
        return
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    with _writing_in(folder):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=TEMPORARY_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _file_mode(path))
            os.replace(tmp, path)
        except BaseException:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
            raise
    _sync_folder(folder)


TEMPORARY_SUFFIX = ".fastrnn.tmp"


@contextlib.contextmanager
def _writing_in(folder):
    """Hold a shared lock on ``folder`` for a write in it; first, if no other write holds one,
    remove what interrupted writes left there (the lock then held exclusively)."""
    fd = None if fcntl is None else _open_folder(folder)
    try:
        if fd is not None:
            if _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
                _remove_leftovers(folder)
            _flock(fd, fcntl.LOCK_SH)  # from the exclusive lock, or after another's cleaning
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _open_folder(folder):
    try:
        return os.open(folder, os.O_RDONLY)
    except OSError:
        return None


def _flock(fd, operation) -> bool:
    """flock(fd, operation); False when the lock is held elsewhere or cannot be had here."""
    try:
        fcntl.flock(fd, operation)
    except OSError:
        return False
    return True


def _remove_leftovers(folder) -> None:
    """Remove the temporary files of ``write_atomically`` in ``folder``: only to be called with
    the folder locked exclusively, when no write can be under way in it."""
    try:
        with os.scandir(folder) as entries:
            leftovers = [e.path for e in entries
                         if _is_temporary(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for leftover in leftovers:
        try:
            os.remove(leftover)
        except OSError:  # gone already, or not ours to remove
            pass


def _is_temporary(name: str) -> bool:
    """Whether ``name`` is that of a temporary file of ``write_atomically``:
    ``.<name>.<random>.fastrnn.tmp``."""
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX) and "." in name[1:-len(TEMPORARY_SUFFIX)]


def is_special_file(path) -> bool:
    """Whether ``path`` exists and is not a regular file (a device, a pipe, a terminal), which
    ``write_atomically`` writes into rather than replaces."""
    return os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode)


def _file_mode(path):
    """Keep an existing file's permissions; a new file gets what ``open`` would give it, rw for
    all less the process's umask (mkstemp's temporary file is rw for its owner only)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: from /proc where Linux shows it, else by setting it and back (which
    another thread creating a file in between would see)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder):
    """Make the rename itself durable (POSIX); not possible on every platform."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
