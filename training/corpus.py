"""The training corpus: source files from a git repository or from permissively licensed installed packages.

Every file that is read, and every file that is skipped with its reason, ends up in the manifest, so each
model's card can say what went into it. The held-out split is by file (never by chunk), decided by a hash
of the path so it is stable across runs and machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sysconfig
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from infill.errors import TrainingError
from infill.regions import language_for_path
from training.dedupe import duplicate_indices
from training.filters import content_reason, path_reason, secret_reason
from training.licenses import DistributionLicense, installed_distribution_licenses, license_text_verdict
from training.parallel import parallel_map

logger = logging.getLogger(__name__)

# Our own package never trains the default model: the repo evaluation on this repository must measure
# what fine-tuning adds, not what the base already memorised.
EXCLUDED_DISTRIBUTIONS = frozenset({"infill"})


@dataclass(frozen=True)
class SourceFile:
    path: str  # repository-relative path, or "<distribution>/<path in the distribution>"
    text: str
    language: str | None


@dataclass
class Corpus:
    train: list[SourceFile]
    heldout: list[SourceFile]
    manifest: dict[str, object] = field(default_factory=dict)

    def write_manifest(self, path: Path) -> None:
        path.write_text(json.dumps(self.manifest, indent=2) + "\n")


def heldout_score(path: str, seed: int = 0) -> float:
    """A stable number in [0, 1) per path; files scoring below the held-out fraction are held out."""
    digest = hashlib.sha256(f"{seed}:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# Declaration-only files: their "bodies" are ``...``, so a gap held out in one measures nothing a user types.
STUB_SUFFIXES = (".pyi", ".d.ts")


def _split(files: list[SourceFile], heldout_fraction: float, seed: int) -> tuple[list, list]:
    """Held out by a stable per-path score; stubs train but are held out only when nothing else can be."""
    eligible = [f for f in files if not f.path.endswith(STUB_SUFFIXES)] or files
    scores = [heldout_score(f.path, seed) for f in eligible]
    heldout = [f for f, s in zip(eligible, scores, strict=True) if s < heldout_fraction]
    if not heldout and len(files) >= 2 and heldout_fraction > 0:
        # A small repository still gets one held-out file, the one with the lowest score.
        heldout = [min(zip(scores, range(len(eligible)), eligible, strict=True))[2]]
    held = {f.path for f in heldout}
    return [f for f in files if f.path not in held], heldout


def _accept(path: str, read_text: Callable[[], str | None], skipped: Counter) -> SourceFile | None:
    """Apply path, secret and content filters to one candidate file; count the reason when it is skipped."""
    accepted, reason = _screen(path, read_text)
    if reason is not None:
        skipped[reason] += 1
        logger.debug("skip %s: %s", path, reason)
    return accepted


def _screen(path: str, read_text: Callable[[], str | None]) -> tuple[SourceFile | None, str | None]:
    """(the file, None) when it is training material, else (None, why not)."""
    # Secret-looking names are counted first, so the manifest says why a .env or key file was skipped.
    reason = secret_reason(path, None)
    language = language_for_path(path)
    if reason is None and language is None:
        reason = "unsupported language"
    reason = reason or path_reason(path)
    text = None
    if reason is None:
        text = read_text()
        if text is None:
            reason = "not utf-8 text"
    if reason is None:
        reason = content_reason(text) or secret_reason(path, text)
    if reason is not None:
        return None, reason
    return SourceFile(path, text, language), None


def _screen_item(item: tuple[str, str | Path]) -> tuple[SourceFile | None, str | None]:
    path, source = item
    if isinstance(source, Path):
        return _screen(path, lambda: _read_utf8(source))
    return _screen(path, lambda: source)


def accept_many(
    items: Sequence[tuple[str, str | Path]], workers: int = 1
) -> tuple[list[SourceFile], Counter]:
    """Screen (corpus path, text or file to read) candidates in ``workers`` processes, keeping their order."""
    skipped: Counter = Counter()
    files: list[SourceFile] = []
    chunk = max(1, min(256, len(items) // (workers * 8) or 1))
    for accepted, reason in parallel_map(_screen_item, items, workers, chunk):
        if accepted is not None:
            files.append(accepted)
        else:
            skipped[reason] += 1
    return files, skipped


def _finish(
    files: list[SourceFile],
    skipped: Counter,
    source: dict[str, object],
    heldout_fraction: float,
    seed: int,
    deduplicate: bool = True,
) -> Corpus:
    duplicates = duplicate_indices([f.text for f in files]) if deduplicate else {}
    if duplicates:
        skipped["duplicate"] += len(duplicates)
    unique = [f for i, f in enumerate(files) if i not in duplicates]
    train, heldout = _split(unique, heldout_fraction, seed)
    manifest = {
        "source": source,
        "files": len(unique),
        "train_files": sorted(f.path for f in train),
        "heldout_files": sorted(f.path for f in heldout),
        "train_chars": sum(len(f.text) for f in train),
        "heldout_chars": sum(len(f.text) for f in heldout),
        "languages": dict(Counter(f.language for f in unique).most_common()),
        "skipped": dict(skipped.most_common()),
        "heldout_fraction": heldout_fraction,
        "split_seed": seed,
    }
    return Corpus(train, heldout, manifest)


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def _read_utf8(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def corpus_from_git(repo: str | Path, *, heldout_fraction: float = 0.1, seed: int = 0) -> Corpus:
    """Files git tracks in ``repo`` (``git ls-files``: ignored and untracked files are never read)."""
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        raise TrainingError(f"{repo} is not a directory")
    try:
        root = Path(_git(repo, "rev-parse", "--show-toplevel").decode().strip())
        tracked = _git(root, "ls-files", "-z", "--cached").split(b"\0")
        # Files force-added despite matching .gitignore: still ignored by intent, never read.
        ignored = set(
            _git(root, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard").split(b"\0")
        )
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise TrainingError(f"{repo} is not a git repository (training reads only files git tracks)") from exc
    rel_paths = [p.decode("utf-8", "surrogateescape") for p in tracked if p and p not in ignored]
    if not rel_paths:
        raise TrainingError(f"git repository {root} tracks no files; commit some source files first")
    skipped: Counter = Counter()
    files = []
    for rel in sorted(rel_paths):
        full = root / rel
        if full.is_symlink() or not full.is_file():
            skipped["not a regular file"] += 1
            continue
        accepted = _accept(rel, lambda full=full: _read_utf8(full), skipped)
        if accepted is not None:
            files.append(accepted)
    if not files:
        raise TrainingError(
            f"no supported source files in {root} ({len(rel_paths)} tracked; skipped: "
            + ", ".join(f"{reason} {count}" for reason, count in skipped.most_common())
            + ")"
        )
    try:
        head = _git(root, "rev-parse", "--verify", "-q", "HEAD").decode().strip()
    except subprocess.CalledProcessError:
        head = "(no commit yet)"
    source = {"kind": "git", "repo": str(root), "commit": head}
    return _finish(files, skipped, source, heldout_fraction, seed)


def corpus_from_python_packages(
    *,
    max_chars_per_distribution: int = 1_500_000,
    max_total_chars: int = 20_000_000,
    heldout_fraction: float = 0.05,
    seed: int = 0,
) -> Corpus:
    """Python files of installed distributions whose licence metadata is permissive.

    Each distribution contributes at most ``max_chars_per_distribution`` characters (files picked in a
    stable pseudo-random order) so one huge package does not make up the whole corpus.
    """
    licences = installed_distribution_licenses(EXCLUDED_DISTRIBUTIONS)
    used: list[DistributionLicense] = [d for d in licences if d.permissive]
    skipped: Counter = Counter()
    files: list[SourceFile] = []
    total = 0
    contributed: dict[str, int] = {}
    for licence in used:
        budget = max_chars_per_distribution
        for rel, full in distribution_python_files(licence.name, seed):
            if budget <= 0 or total >= max_total_chars:
                break
            accepted = _accept(f"{licence.name}/{rel}", lambda full=full: _read_utf8(full), skipped)
            if accepted is None:
                continue
            files.append(accepted)
            budget -= len(accepted.text)
            total += len(accepted.text)
        contributed[licence.name] = max_chars_per_distribution - budget
    if not files:
        raise TrainingError("no permissively licensed Python files found in the installed distributions")
    source = {
        "kind": "python-packages",
        "distributions_used": [
            {"name": d.name, "version": d.version, "license": d.license, "chars": contributed.get(d.name, 0)}
            for d in used
        ],
        "distributions_rejected": [
            {"name": d.name, "version": d.version, "license": d.license} for d in licences if not d.permissive
        ],
    }
    return _finish(files, skipped, source, heldout_fraction, seed)


def distribution_python_files(name: str, seed: int = 0) -> list[tuple[str, Path]]:
    """(path inside the distribution, file) of its Python files, in a stable pseudo-random order."""
    dist = metadata.distribution(name)
    files = [f for f in dist.files or [] if str(f).endswith(".py") and not str(f).startswith("..")]
    files.sort(key=lambda f: heldout_score(str(f), seed + 1))
    return [(str(rel), Path(dist.locate_file(rel))) for rel in files]


def stdlib_python_files(seed: int = 0) -> tuple[str, list[tuple[str, Path]]]:
    """(licence evidence, [(path, file)]) of this interpreter's standard library, in a stable pseudo-random
    order. Evidence is "" when the library's LICENSE.txt is missing or not the PSF licence (then it is not
    used: Debian-style layouts keep the licence elsewhere and the files may be patched)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    license_file = root / "LICENSE.txt"
    text = _read_utf8(license_file) if license_file.is_file() else None
    evidence = ""
    if text is not None and license_text_verdict(text) == ("PSF-2.0", True):
        evidence = f"PSF-2.0 ({license_file})"
    skip = {"site-packages", "dist-packages", "__pycache__"}
    files = [
        (str(path.relative_to(root)), path)
        for path in root.rglob("*.py")
        if not skip.intersection(path.relative_to(root).parts) and path.is_file()
    ]
    files.sort(key=lambda item: heldout_score(item[0], seed + 1))
    return evidence, files


def corpus_from_archive(
    path: str | Path, *, heldout_fraction: float = 0.05, seed: int = 0, max_total_chars: int | None = None
) -> Corpus:
    """The files of a corpus archive (``python -m training.archive``: already filtered and de-duplicated).

    The training files come in a stable pseudo-random order, so a prefix of them (what the tokenizer is
    trained on) is a sample of every package rather than the first few.
    """
    from training.corpus_archive import read_manifest, read_records

    archive_manifest = read_manifest(Path(path))
    files: list[SourceFile] = []
    total = 0
    for record in read_records(Path(path)):
        if max_total_chars is not None and total >= max_total_chars:
            break
        files.append(SourceFile(record.path, record.text, record.language))
        total += len(record.text)
    if not files:
        raise TrainingError(f"the corpus archive {path} holds no files")
    skipped = Counter(archive_manifest.get("skipped", {}))
    source = {"kind": "archive", "archive": str(path), **archive_summary(archive_manifest)}
    corpus = _finish(files, skipped, source, heldout_fraction, seed, deduplicate=False)
    corpus.train.sort(key=lambda f: heldout_score(f.path, seed + 2))
    return corpus


def archive_summary(manifest: dict) -> dict[str, object]:
    """What a model card needs from an archive manifest: its origins with licences and sizes."""
    return {
        "records_sha256": manifest.get("records_sha256"),
        "origins": manifest.get("origins", []),
        "rejected": manifest.get("rejected", []),
    }
