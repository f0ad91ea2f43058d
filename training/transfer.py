"""Bring a GPU run's results back through the device tool's return limits, and check them on arrival.

A call returns at most 8 files of at most 16 MiB each, 64 MiB in all. So the results are planned as parts:
files under 1 MiB go into one ``small.tar.gz``; larger ones (weight shards) travel as they are, a few per
part; every part carries ``transfer.json`` (each file's part, size and sha256) so that any part says what the
whole is. Standard library only (and the repository): it runs before anything is installed on the GPU machine.

    python -m training.transfer plan --from bundle=runs/gpu/bundle --from report=runs/gpu/report --to PLAN
    python -m training.transfer part N --plan PLAN --out "$OUT"       # on the GPU machine, one call per part
    python -m training.transfer restore PART_DIR... --into DEST         # here: verified, reassembled tree
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
from pathlib import Path

from training.corpus_archive import file_sha256

MAX_FILES_PER_PART = 8
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_PART_BYTES = 60 * 1024 * 1024  # 64 MiB returned per call, with room for the small files and the plan
SMALL_FILE_BYTES = 1024 * 1024
PLAN_FILE = "transfer.json"
SMALL_TAR = "small.tar.gz"


class TransferError(Exception):
    pass


def plan(sources: dict[str, Path], to: Path) -> dict:
    """Write ``PLAN/transfer.json`` and ``PLAN/small.tar.gz`` for the files under each named source dir."""
    files: dict[str, Path] = {}
    for name, root in sources.items():
        if not root.is_dir():
            raise TransferError(f"{root} is not a directory")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files[f"{name}/{path.relative_to(root).as_posix()}"] = path
    if not files:
        raise TransferError("nothing to transfer")
    to.mkdir(parents=True, exist_ok=True)
    small = {rel: path for rel, path in files.items() if path.stat().st_size < SMALL_FILE_BYTES}
    large = {rel: path for rel, path in files.items() if rel not in small}
    with tarfile.open(to / SMALL_TAR, "w:gz") as tar:
        for rel, path in small.items():
            tar.add(path, arcname=rel)
    reserved = (to / SMALL_TAR).stat().st_size
    if reserved > MAX_FILE_BYTES:
        raise TransferError(f"the small files pack to {reserved / 2**20:.1f} MiB, over one file's 16 MiB")
    entries: dict[str, dict] = {}
    part, used, count = 1, reserved, 2  # part 1 also carries small.tar.gz; every part carries the plan
    for rel, path in large.items():
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TransferError(f"{rel} is {size / 2**20:.1f} MiB, over the 16 MiB a returned file may have")
        if used + size > MAX_PART_BYTES or count + 1 > MAX_FILES_PER_PART:
            part, used, count = part + 1, 0, 1
        entries[rel] = {
            "part": part,
            "bytes": size,
            "sha256": file_sha256(path),
            "source": str(path.resolve()),
        }
        used, count = used + size, count + 1
    for rel, path in small.items():
        entries[rel] = {"part": 0, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    manifest = {
        "parts": part,
        "small_tar": SMALL_TAR,
        "small_tar_sha256": file_sha256(to / SMALL_TAR),
        "files": entries,
    }
    (to / PLAN_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _flat(rel: str) -> str:
    return rel.replace("/", "__")


def copy_part(number: int, plan_dir: Path, out: Path) -> list[Path]:
    """Copy part ``number``'s files flat into ``out`` (the folder whose files come back)."""
    manifest = json.loads((plan_dir / PLAN_FILE).read_text())
    if not 1 <= number <= manifest["parts"]:
        raise TransferError(f"part {number} does not exist: the plan has parts 1 to {manifest['parts']}")
    out.mkdir(parents=True, exist_ok=True)
    written = [Path(shutil.copy2(plan_dir / PLAN_FILE, out / PLAN_FILE))]
    if number == 1:
        written.append(Path(shutil.copy2(plan_dir / SMALL_TAR, out / SMALL_TAR)))
    for rel, entry in manifest["files"].items():
        if entry["part"] == number:
            written.append(Path(shutil.copy2(entry["source"], out / _flat(rel))))
    return written


def restore(part_dirs: list[Path], into: Path) -> list[str]:
    """Reassemble the planned tree under ``into`` from the returned part folders; every sha256 checked."""
    plans = [d / PLAN_FILE for d in part_dirs if (d / PLAN_FILE).is_file()]
    if not plans:
        raise TransferError(f"no {PLAN_FILE} in {', '.join(map(str, part_dirs))}")
    manifest = json.loads(plans[0].read_text())
    small = next((d / SMALL_TAR for d in part_dirs if (d / SMALL_TAR).is_file()), None)
    found: dict[str, Path] = {}
    for rel, entry in manifest["files"].items():
        copies = [d / _flat(rel) for d in part_dirs if entry["part"] and (d / _flat(rel)).is_file()]
        if copies:
            found[rel] = copies[0]
    missing_parts = sorted(
        {e["part"] for rel, e in manifest["files"].items() if e["part"] and rel not in found}
        | ({1} if small is None else set())
    )
    if missing_parts:
        raise TransferError(f"parts missing: {', '.join(map(str, missing_parts))} of {manifest['parts']}")
    if file_sha256(small) != manifest["small_tar_sha256"]:
        raise TransferError(f"{small}: sha256 differs from the plan (damaged in transfer)")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(small, "r:gz") as tar:
        tar.extractall(into, filter="data")
    for rel, path in found.items():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, into / rel)
    bad = [rel for rel, entry in manifest["files"].items() if file_sha256(into / rel) != entry["sha256"]]
    if bad:
        raise TransferError(f"sha256 differs from the plan for {', '.join(bad)}")
    return sorted(manifest["files"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.transfer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("plan", help="plan the parts and pack the small files")
    make.add_argument("--from", dest="sources", action="append", required=True, metavar="NAME=DIR")
    make.add_argument("--to", type=Path, required=True)
    part = commands.add_parser("part", help="copy one part's files into the folder that comes back")
    part.add_argument("number", type=int)
    part.add_argument("--plan", type=Path, required=True)
    part.add_argument("--out", type=Path, required=True)
    back = commands.add_parser("restore", help="check and reassemble the returned parts")
    back.add_argument("parts", type=Path, nargs="+")
    back.add_argument("--into", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "plan":
            sources = {}
            for item in args.sources:
                name, sep, folder = item.partition("=")
                if not sep or not name or "/" in name:
                    raise TransferError(f"--from {item!r}: expected NAME=DIR")
                sources[name] = Path(folder)
            manifest = plan(sources, args.to)
            sizes = [
                sum(e["bytes"] for e in manifest["files"].values() if e["part"] == n)
                for n in range(1, 1 + manifest["parts"])
            ]
            print(
                f"{len(manifest['files'])} files in {manifest['parts']} parts (large files per part, MiB: "
                + ", ".join(f"{s / 2**20:.1f}" for s in sizes)
                + ")"
            )
        elif args.command == "part":
            for path in copy_part(args.number, args.plan, args.out):
                print(f"{path.name} {path.stat().st_size / 2**20:.1f} MiB")
        else:
            for rel in restore(args.parts, args.into):
                print(rel)
    except (TransferError, OSError, ValueError, tarfile.TarError) as exc:
        print(f"transfer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
