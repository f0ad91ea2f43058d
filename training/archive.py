"""Build the corpus archive here, merge it with a machine's own Python there: ``python -m training.archive``.

    build   pinned PyPI and npm packages (``training/archive_packages.toml``) -> licence-checked,
            filtered, de-duplicated, xz-compressed archive (default ``runs/corpus-archive``, git-ignored;
            it travels to a GPU machine that reaches no registry)
    merge   archives + the permissively licensed installed distributions (+ the standard library) of the
            machine it runs on -> one de-duplicated archive the trainer reads (``--corpus-archive DIR``)
    show    totals, languages, licences and rejected packages of an archive

Every step records what it took and what it left out, and why, in the archive's manifest.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from infill.errors import TrainingError
from infill.regions import language_for_path
from training.corpus import (
    EXCLUDED_DISTRIBUTIONS,
    SourceFile,
    accept_many,
    distribution_python_files,
    heldout_score,
    stdlib_python_files,
)
from training.corpus_archive import ArchiveRecord, file_sha256, read_manifest, read_records, write_archive
from training.dedupe import duplicate_indices
from training.licenses import installed_distribution_licenses
from training.parallel import default_workers
from training.registry_packages import (
    PackageSpec,
    artefact_members,
    fetch,
    find_artefact,
    load_package_list,
    package_licence,
    section_budgets,
)

logger = logging.getLogger(__name__)

PACKAGE_LIST = Path(__file__).resolve().parent / "archive_packages.toml"


def _package_sources(spec: PackageSpec, members: dict[str, bytes], skipped: Counter) -> list[tuple[str, str]]:
    """(archive path, text) of the package's files in a supported language; undecodable ones are counted."""
    items = []
    for inner, data in members.items():
        if ".dist-info/" in inner or ".egg-info/" in inner or language_for_path(inner) is None:
            continue
        try:
            items.append((f"{spec.ecosystem}/{spec.folder}/{inner}", data.decode("utf-8")))
        except UnicodeDecodeError:
            skipped["not utf-8 text"] += 1
    items.sort(key=lambda item: heldout_score(item[0], 1))  # the per-package cap takes a stable sample
    return items


def _capped(files: list[SourceFile], budget: int) -> list[SourceFile]:
    kept = []
    for f in files:
        if budget <= 0:
            break
        kept.append(f)
        budget -= len(f.text)
    return kept


def _drop_duplicates(records: list[ArchiveRecord], skipped: Counter, workers: int) -> list[ArchiveRecord]:
    duplicates = duplicate_indices([r.text for r in records], workers=workers)
    if duplicates:
        skipped["duplicate"] += len(duplicates)
    return [r for i, r in enumerate(records) if i not in duplicates]


def _count_origins(origins: list[dict], records: list[ArchiveRecord]) -> None:
    """Set each origin's files and characters to what survived filtering and de-duplication."""
    files: Counter = Counter(r.origin for r in records)
    chars: Counter = Counter()
    for r in records:
        chars[r.origin] += len(r.text)
    for origin in origins:
        origin["files"], origin["chars"] = files[origin["origin"]], chars[origin["origin"]]


def build_archive(
    package_list: Path,
    out: Path,
    cache: Path,
    *,
    offline: bool = False,
    max_chars_per_package: int = 4_000_000,
    max_total_chars: int = 300_000_000,
    workers: int = 1,
) -> dict:
    """Fetch (unless ``offline``), licence-check, filter and de-duplicate the pinned packages; write them."""
    specs = load_package_list(package_list)
    budgets = section_budgets(package_list)
    package_caps = section_budgets(package_list, "max_chars_per_package")
    used: Counter = Counter()  # characters taken per ecosystem
    unused: list[str] = []
    origins: list[dict] = []
    rejected: list[dict] = []
    skipped: Counter = Counter()
    records: list[ArchiveRecord] = []
    total = 0
    for spec in specs:
        origin = f"{spec.ecosystem}:{spec.label}"
        budget = min(
            max_total_chars - total, budgets.get(spec.ecosystem, max_total_chars) - used[spec.ecosystem]
        )
        if budget <= 0:
            unused.append(origin)  # the ecosystem's character budget is spent
            continue
        try:
            artefact = find_artefact(spec, cache) if offline else fetch(spec, cache)
            if artefact is None:
                raise TrainingError("not in the download cache (--offline)")
            members = dict(artefact_members(artefact))
        except (TrainingError, OSError, EOFError, ValueError) as exc:
            rejected.append({"origin": origin, "license": "", "reason": str(exc)})
            logger.warning("%s: %s", origin, exc)
            continue
        licence = package_licence(spec, members)
        if not licence.permissive:
            rejected.append({"origin": origin, "license": licence.evidence, "reason": licence.reason})
            logger.info("%s rejected: %s", origin, licence.reason)
            continue
        files, why = accept_many(_package_sources(spec, members, skipped), workers)
        skipped.update(why)
        kept = _capped(files, min(package_caps.get(spec.ecosystem, max_chars_per_package), budget))
        if len(kept) < len(files):
            skipped["over the per-package cap"] += len(files) - len(kept)
        records += [ArchiveRecord.of(f.path, origin, licence.evidence, f.language, f.text) for f in kept]
        total += sum(len(f.text) for f in kept)
        used[spec.ecosystem] += sum(len(f.text) for f in kept)
        origins.append(
            {
                "origin": origin,
                "ecosystem": spec.ecosystem,
                "name": spec.name,
                "version": spec.version,
                "license": licence.evidence,
                "license_files": licence.files,
                "artefact": artefact.name,
                "artefact_sha256": file_sha256(artefact),
            }
        )
        logger.info(
            "%s: %d files, %d chars (total %d)", origin, len(kept), sum(len(f.text) for f in kept), total
        )
    records = _drop_duplicates(records, skipped, workers)
    _count_origins(origins, records)
    if not records:
        raise TrainingError(f"no permissively licensed source files in the {len(specs)} packages listed")
    manifest = {
        "kind": "registry packages",
        "package_list": str(package_list),
        "package_list_sha256": file_sha256(package_list),
        "max_chars_per_package": max_chars_per_package,
        "max_chars_per_ecosystem": budgets,
        "max_chars_per_package_by_ecosystem": package_caps,
        "origins": origins,
        "rejected": rejected,
        "unused": unused,
        "skipped": dict(skipped.most_common()),
    }
    return write_archive(out, records, manifest, compress=True)


def _pool_items(
    installed: bool, include_stdlib: bool, max_chars_per_distribution: int, seed: int
) -> tuple[list[tuple[str, Path]], dict[str, dict], list[dict]]:
    """Candidate files of this machine's permissive distributions (and standard library), their origins and
    the rejected distributions. Budgets count file bytes (about characters for source code)."""
    items: list[tuple[str, Path]] = []
    origins: dict[str, dict] = {}
    rejected: list[dict] = []

    def take(folder: str, origin: dict, files: list[tuple[str, Path]]) -> None:
        budget = max_chars_per_distribution
        for rel, full in files:
            if budget <= 0:
                break
            items.append((f"{folder}/{rel}", full))
            budget -= full.stat().st_size if full.is_file() else 0
        origins[folder] = origin

    for licence in installed_distribution_licenses(EXCLUDED_DISTRIBUTIONS) if installed else []:
        origin = f"installed:{licence.name}=={licence.version}"
        if not licence.permissive:
            rejected.append({"origin": origin, "license": licence.license, "reason": "licence metadata"})
            continue
        origin_entry = {
            "origin": origin,
            "ecosystem": "installed",
            "name": licence.name,
            "version": licence.version,
            "license": licence.license,
        }
        take(f"installed/{licence.name}", origin_entry, distribution_python_files(licence.name, seed))
    if include_stdlib:
        version = platform.python_version()
        evidence, files = stdlib_python_files(seed)
        origin = f"stdlib:{version}"
        if evidence:
            entry = {
                "origin": origin,
                "ecosystem": "stdlib",
                "name": "python",
                "version": version,
                "license": evidence,
            }
            take(f"stdlib/python-{version}", entry, files)
        else:
            rejected.append(
                {"origin": origin, "license": "", "reason": "no PSF LICENSE.txt beside the library"}
            )
    return items, origins, rejected


def merge_corpus(
    archives: Sequence[Path],
    out: Path,
    *,
    installed: bool = False,
    stdlib: bool = False,
    max_chars_per_distribution: int = 8_000_000,
    max_total_chars: int = 2_000_000_000,
    workers: int = 1,
    seed: int = 0,
) -> dict:
    """One archive of this machine's permissive Python (if asked) and the given archives, de-duplicated
    across all of them, records in a stable pseudo-random order (a prefix is a sample of every origin)."""
    records: list[ArchiveRecord] = []
    origins: list[dict] = []
    rejected: list[dict] = []
    skipped: Counter = Counter()
    if installed or stdlib:
        items, pool_origins, pool_rejected = _pool_items(installed, stdlib, max_chars_per_distribution, seed)
        files, why = accept_many(items, workers)
        skipped.update(why)
        for f in files:
            entry = pool_origins["/".join(f.path.split("/")[:2])]
            records.append(ArchiveRecord.of(f.path, entry["origin"], entry["license"], f.language, f.text))
        origins += list(pool_origins.values())
        rejected += pool_rejected
    for archive in archives:
        manifest = read_manifest(archive)
        origins += manifest.get("origins", [])
        rejected += manifest.get("rejected", [])
        skipped.update(manifest.get("skipped", {}))
        records += read_records(archive)
    total, capped = 0, []
    for record in sorted(records, key=lambda r: heldout_score(r.path, seed + 3)):
        if total >= max_total_chars:
            skipped["over --max-total-chars"] += 1
            continue
        capped.append(record)
        total += len(record.text)
    records = _drop_duplicates(capped, skipped, workers)
    _count_origins(origins, records)
    if not records:
        raise TrainingError("nothing to merge: no archive given and no permissive installed files found")
    manifest = {
        "kind": "merged",
        "machine": platform.node(),
        "python": platform.python_version(),
        "archives": [str(a) for a in archives],
        "max_chars_per_distribution": max_chars_per_distribution,
        "origins": origins,
        "rejected": rejected,
        "skipped": dict(skipped.most_common()),
    }
    return write_archive(out, records, manifest, compress=False)


def train_tokenizer(
    archive: Path, out: Path, vocab_size: int, *, heldout_fraction: float = 0.05, seed: int = 0
):
    """The code tokenizer for every model trained on ``archive``, from the sample the trainer would take (a
    prefix of its training files, never held-out ones), saved in ``out`` for ``--tokenizer``: trained once, so
    the models that share it can start together."""
    from training.corpus import corpus_from_archive
    from training.model_factory import TOKENIZER_SAMPLE_CHARS, new_tokenizer

    # Records come in a pseudo-random order, so a prefix of the archive samples all of it.
    corpus = corpus_from_archive(
        archive, heldout_fraction=heldout_fraction, seed=seed, max_total_chars=4 * TOKENIZER_SAMPLE_CHARS
    )
    tokenizer = new_tokenizer(corpus.train, vocab_size)
    tokenizer.save_pretrained(str(out))
    return tokenizer


def describe(manifest: dict) -> str:
    """A short human summary of an archive manifest."""
    origins = manifest.get("origins", [])
    by_ecosystem: Counter = Counter()
    chars_by_ecosystem: Counter = Counter()
    licences: Counter = Counter()
    for origin in origins:
        by_ecosystem[origin.get("ecosystem", "?")] += 1
        chars_by_ecosystem[origin.get("ecosystem", "?")] += origin.get("chars", 0)
        licences[origin.get("license", "?")] += 1
    lines = [
        f"files {manifest['files']:,}, characters {manifest['chars']:,}, "
        f"{manifest['records']} {manifest['records_bytes'] / 2**20:.1f} MiB",
        "languages: " + ", ".join(f"{k} {v:,}" for k, v in manifest["languages"].items()),
        "origins: "
        + ", ".join(f"{k} {v} ({chars_by_ecosystem[k]:,} chars)" for k, v in by_ecosystem.most_common()),
        "licences: " + ", ".join(f"{k} {v}" for k, v in licences.most_common()),
        f"rejected ({len(manifest.get('rejected', []))}): "
        + "; ".join(f"{r['origin']}: {r['reason']}" for r in manifest.get("rejected", [])),
        "skipped files: " + ", ".join(f"{k} {v:,}" for k, v in manifest.get("skipped", {}).items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.archive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="fetch the pinned packages and write the compressed archive")
    build.add_argument("--packages", type=Path, default=PACKAGE_LIST, help="pinned package list (TOML)")
    build.add_argument("--out", type=Path, default=Path("runs/corpus-archive"))
    build.add_argument("--cache", type=Path, default=Path("runs/archive-cache"), help="downloads, kept")
    build.add_argument("--offline", action="store_true", help="use only what the cache holds (no network)")
    build.add_argument("--max-chars-per-package", type=int, default=4_000_000)
    build.add_argument("--max-total-chars", type=int, default=300_000_000)
    merge = commands.add_parser("merge", help="merge archives and this machine's permissive Python")
    merge.add_argument("--out", type=Path, required=True)
    merge.add_argument("--archive", type=Path, action="append", default=[], help="an archive (repeatable)")
    merge.add_argument("--installed", action="store_true", help="the installed permissive distributions")
    merge.add_argument("--stdlib", action="store_true", help="the standard library (PSF licence)")
    merge.add_argument("--max-chars-per-distribution", type=int, default=8_000_000)
    merge.add_argument("--max-total-chars", type=int, default=2_000_000_000)
    merge.add_argument("--seed", type=int, default=0)
    for sub in (build, merge):
        sub.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
        sub.add_argument("-v", "--verbose", action="store_true")
    show = commands.add_parser("show", help="summarise an archive")
    show.add_argument("archive", type=Path)
    tokenizer = commands.add_parser("tokenizer", help="train the code tokenizer the models on it share")
    tokenizer.add_argument("--archive", type=Path, required=True)
    tokenizer.add_argument("--vocab-size", type=int, required=True)
    tokenizer.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
    )
    workers = getattr(args, "workers", None) or default_workers()
    try:
        if args.command == "build":
            manifest = build_archive(
                args.packages,
                args.out,
                args.cache,
                offline=args.offline,
                max_chars_per_package=args.max_chars_per_package,
                max_total_chars=args.max_total_chars,
                workers=workers,
            )
        elif args.command == "merge":
            manifest = merge_corpus(
                args.archive,
                args.out,
                installed=args.installed,
                stdlib=args.stdlib,
                max_chars_per_distribution=args.max_chars_per_distribution,
                max_total_chars=args.max_total_chars,
                workers=workers,
                seed=args.seed,
            )
        elif args.command == "tokenizer":
            trained = train_tokenizer(args.archive, args.out, args.vocab_size)
            print(f"tokenizer of {len(trained)} tokens written to {args.out}")
            return 0
        else:
            manifest = read_manifest(args.archive)
    except TrainingError as exc:
        print(f"archive: error: {exc}", file=sys.stderr)
        return 2
    print(describe(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
