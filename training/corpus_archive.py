"""The corpus archive on disk: one JSON record per source file, and a manifest of where every file came from.

Layout of an archive directory:
  manifest.json                 origins (package or distribution, version, licence evidence, licence files,
                                files, characters), rejected origins with the reason, skip counts, totals
  files.jsonl.xz | files.jsonl  one record per file: path, origin, licence, language, sha256 of the text, text

xz because it is in every Python's standard library (the GPU machine has no zstd module) and packs source
code about six to one; the corpus merged on the GPU machine itself stays uncompressed (read once, locally).
"""

from __future__ import annotations

import hashlib
import json
import lzma
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from infill.errors import TrainingError

FORMAT = "infill-corpus-archive/1"
MANIFEST = "manifest.json"
COMPRESSED_RECORDS = "files.jsonl.xz"
PLAIN_RECORDS = "files.jsonl"


@dataclass(frozen=True)
class ArchiveRecord:
    path: str  # "<origin folder>/<path inside it>", unique in the archive
    origin: str  # "pypi:django==5.1.4", "npm:lodash@4.17.21", "installed:numpy==2.4.6", "stdlib:3.12.3"
    license: str  # the origin's licence evidence
    language: str
    sha256: str  # of the UTF-8 text
    text: str

    @classmethod
    def of(cls, path: str, origin: str, license: str, language: str, text: str) -> ArchiveRecord:
        return cls(path, origin, license, language, hashlib.sha256(text.encode()).hexdigest(), text)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_archive(out: Path, records: Iterable[ArchiveRecord], manifest: dict, *, compress: bool) -> dict:
    """Write the records and the manifest (completed with totals and the records file's sha256)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in (COMPRESSED_RECORDS, PLAIN_RECORDS, MANIFEST):
        (out / stale).unlink(missing_ok=True)
    name = COMPRESSED_RECORDS if compress else PLAIN_RECORDS
    target = out / name
    languages: Counter = Counter()
    files = chars = 0
    with _open_text(target, "w") as fh:
        for record in records:
            fh.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            languages[record.language] += 1
            files += 1
            chars += len(record.text)
    manifest = {
        "format": FORMAT,
        **manifest,
        "records": name,
        "records_sha256": file_sha256(target),
        "records_bytes": target.stat().st_size,
        "files": files,
        "chars": chars,
        "languages": dict(languages.most_common()),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def read_manifest(archive: Path) -> dict:
    path = archive / MANIFEST
    if not path.is_file():
        raise TrainingError(
            f"{archive} is not a corpus archive (no {MANIFEST}; build one with "
            "python -m training.archive build)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"unreadable {path}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise TrainingError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def read_records(archive: Path) -> Iterator[ArchiveRecord]:
    """Every record, in the order written."""
    manifest = read_manifest(archive)
    path = archive / manifest["records"]
    if not path.is_file():
        raise TrainingError(f"{archive}: {manifest['records']} is missing")
    number = 0
    try:
        with _open_text(path, "r") as fh:
            for line in fh:
                yield ArchiveRecord(**json.loads(line))
                number += 1
    except (ValueError, TypeError, EOFError, lzma.LZMAError) as exc:
        raise TrainingError(f"{path}: unreadable after {number} records ({exc})") from None


def _open_text(path: Path, mode: str) -> TextIO:
    """The records file as text: xz-compressed when its name ends in .xz."""
    if path.suffix == ".xz":
        return lzma.open(path, mode + "t", encoding="utf-8", preset=9 if mode == "w" else None)
    return path.open(mode, encoding="utf-8")
