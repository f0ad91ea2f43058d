"""Reading and writing user files without ever losing or half-writing them.

Files are read as bytes and decoded strictly, so the exact original bytes are known; edits are computed on
an LF view of the text (``infill.line_endings``: models are trained on LF) and mapped back to the original
offsets, so line endings and a missing final newline outside the edited spans survive byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infill.errors import InputError

# A NUL byte in the first block is what git and grep take as "binary".
BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    path: Path
    data: bytes  # exactly what was on disk when read
    text: str  # data decoded as UTF-8, line endings untouched
    mtime_ns: int
    mode: int  # permission bits, kept when the file is rewritten


def read_source_bytes(path: Path) -> bytes:
    """The bytes of a file the user named, or one InputError line saying why they cannot be read."""
    return _read(path)[0]


def _read(path: Path) -> tuple[bytes, os.stat_result]:
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a directory")
        with path.open("rb") as handle:
            return handle.read(), os.fstat(handle.fileno())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror or error}") from None


def read_source(path: str | Path) -> SourceFile:
    """Read a UTF-8 text file the user named; every way it can be unusable is one InputError line."""
    path = Path(path)
    data, info = _read(path)
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise InputError(f"{path}: looks like a binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (invalid byte 0x{data[error.start]:02x})") from None
    return SourceFile(path, data, text, info.st_mtime_ns, stat.S_IMODE(info.st_mode))


def check_writable(path: Path) -> None:
    """Refuse (one InputError line) to replace ``path`` when it or its directory is read-only: checked before
    the model runs, so a refusal costs nothing. The permission bits are honoured even for root, who could
    replace the file anyway (a file is replaced by renaming a temporary file over it, so what matters is the
    directory, but a read-only file says "do not change me")."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{path}: no such directory: {directory}")
    if path.exists():
        if path.is_dir():
            raise InputError(f"{path}: is a directory")
        if not _writable(path):
            raise InputError(f"{path}: is read-only; not rewritten (make it writable first)")
    if not _writable(directory):
        raise InputError(
            f"{path}: cannot write it: its directory {directory} is read-only "
            "(the file is replaced through a temporary file beside it)"
        )


def _writable(path: Path) -> bool:
    try:
        bits = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return False
    return bool(bits & 0o222) and os.access(path, os.W_OK)


def write_atomic(path: Path, data: bytes, *, unchanged_since: SourceFile | None = None) -> None:
    """Replace ``path`` with ``data`` all at once (temp file in the same directory, fsync, os.replace).

    With ``unchanged_since``, refuse (InputError, nothing written) when the file on disk no longer matches
    what was read: an editor or another tool changed it while the model was running. Any failure is one
    InputError naming ``path`` (never the temporary file), and leaves ``path`` as it was.
    """
    directory = path.parent if str(path.parent) else Path(".")
    mode = unchanged_since.mode if unchanged_since is not None else None
    if mode is None and path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".infill-tmp", dir=directory)
    except OSError as error:
        raise InputError(f"{path}: cannot write it in {directory}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode if mode is not None else 0o644)
        if unchanged_since is not None:
            _check_unchanged(unchanged_since)
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise InputError(f"{path}: cannot write it: {error.strerror or error}") from None
        raise
    _fsync_directory(directory)


def _check_unchanged(source: SourceFile) -> None:
    try:
        current = source.path.read_bytes()
        mtime_ns = source.path.stat().st_mtime_ns
    except OSError as error:
        raise InputError(
            f"{source.path}: changed while infill was running ({error.strerror}); not written"
        ) from None
    if current != source.data or mtime_ns != source.mtime_ns:
        raise InputError(f"{source.path}: changed while infill was running; not written")


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform/filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Position:
    path: Path
    line: int  # 1-based
    column: int  # 1-based, in characters


def parse_position(spec: str) -> Position:
    """``PATH:LINE:COL`` (the path may itself contain colons)."""
    parts = spec.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise InputError(f"{spec!r}: expected PATH:LINE:COL (1-based line and column)")
    path, line, column = parts
    if not (line.isdigit() and column.isdigit()) or int(line) < 1 or int(column) < 1:
        raise InputError(f"{spec!r}: LINE and COL must be positive integers (1-based)")
    return Position(Path(path), int(line), int(column))


def offset_of(text: str, position: Position) -> int:
    """Character offset of a 1-based line/column in LF text; the column may be one past the line's end."""
    lines = text.split("\n")
    # A final newline ends the last line; it does not start another (editors show "3 lines" for "a\nb\nc\n").
    # The cursor may still sit on the empty line after it, as at the end of any line.
    count = len(lines) - 1 if len(lines) > 1 and lines[-1] == "" else len(lines)
    if position.line > len(lines):
        raise InputError(
            f"{position.path}:{position.line}:{position.column}: line {position.line} is out of range "
            f"(the file has {count} line{'s' if count != 1 else ''})"
        )
    line_text = lines[position.line - 1]
    if position.column > len(line_text) + 1:
        raise InputError(
            f"{position.path}:{position.line}:{position.column}: column {position.column} is out of range "
            f"(line {position.line} has {len(line_text)} character{'s' if len(line_text) != 1 else ''})"
        )
    return sum(len(line) + 1 for line in lines[: position.line - 1]) + position.column - 1


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset in LF text."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
