"""Packages from the registries (PyPI wheels or sdists, npm tarballs): fetching them, reading their licences.

Fetching goes through the registries' own clients, one pinned package at a time: ``pip download --no-deps
--only-binary=:all:`` (a wheel holds the project's Python sources, and pip runs no build code to get it) and
``npm pack --ignore-scripts``. Each artefact is kept in its own folder of the download cache, so a second
build reads the cache and needs no network.

A package counts as permissively licensed only when both its metadata (PyPI ``License-Expression``,
classifiers or ``License``; npm ``license``) and the licence files it ships say so: at least one LICENSE /
COPYING file whose text is a recognised permissive licence, and none that carries a copyleft text or notice.
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from infill.errors import TrainingError
from infill.regions import language_for_path
from training.licenses import (
    UNRECOGNISED_LICENSE_TEXT,
    classify_license,
    license_text_verdict,
    npm_license_expression,
    spdx_is_permissive,
)

MAX_MEMBER_BYTES = 2_000_000  # larger members are never source we keep (the filters stop at 400k chars)
_LICENSE_NAME = re.compile(r"^(licen[cs]e|copying|unlicen[cs]e)([._-].*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class PackageSpec:
    ecosystem: str  # "pypi" | "npm"
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version}" if self.ecosystem == "pypi" else f"{self.name}@{self.version}"

    @property
    def folder(self) -> str:
        """A file-system-safe folder name for the download cache and the corpus paths."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.name}-{self.version}".lstrip("@"))


@dataclass
class PackageLicence:
    evidence: str  # the metadata's licence, as written
    files: dict[str, str] = field(default_factory=dict)  # licence file -> what its text is
    permissive: bool = False
    reason: str = ""  # why it was rejected


def load_package_list(path: Path) -> list[PackageSpec]:
    """The pinned list: ``[pypi] packages = ["name==version"]`` and ``[npm] packages = ["name@version"]``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrainingError(f"cannot read the package list {path}: {exc}") from None
    specs: list[PackageSpec] = []
    for entry in data.get("pypi", {}).get("packages", []):
        name, sep, version = entry.partition("==")
        if not sep or not name or not version:
            raise TrainingError(f"{path}: PyPI entry {entry!r} is not pinned as name==version")
        specs.append(PackageSpec("pypi", name.strip(), version.strip()))
    for entry in data.get("npm", {}).get("packages", []):
        name, sep, version = entry.rpartition("@")
        if not sep or not name or not version:
            raise TrainingError(f"{path}: npm entry {entry!r} is not pinned as name@version")
        specs.append(PackageSpec("npm", name.strip(), version.strip()))
    if not specs:
        raise TrainingError(f"{path} lists no packages")
    return specs


def section_budgets(path: Path, key: str = "max_chars") -> dict[str, int]:
    """Each section's ``max_chars`` (characters the archive takes from that ecosystem) or, with ``key``,
    ``max_chars_per_package``, where set."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {section: int(data[section][key]) for section in ("pypi", "npm") if key in data.get(section, {})}


def find_artefact(spec: PackageSpec, cache: Path) -> Path | None:
    """The downloaded file of ``spec`` in the cache, if it is there."""
    folder = cache / spec.ecosystem / spec.folder
    found = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    return found[0] if found else None


def fetch(spec: PackageSpec, cache: Path) -> Path:
    """Download one pinned package into ``cache/<ecosystem>/<name>-<version>/`` (later builds reuse it)."""
    existing = find_artefact(spec, cache)
    if existing is not None:
        return existing
    folder = cache / spec.ecosystem / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    if spec.ecosystem == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        command += ["--dest", str(folder), spec.label]
    else:
        command = [
            "npm",
            "pack",
            "--silent",
            "--ignore-scripts",
            "--pack-destination",
            str(folder),
            spec.label,
        ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    artefact = find_artefact(spec, cache)
    if result.returncode != 0 or artefact is None:
        lines = (result.stderr or result.stdout).strip().splitlines()
        detail = next(
            (line for line in lines if "ERROR" in line or "error" in line), lines[-1] if lines else ""
        )
        raise TrainingError(f"cannot download {spec.label}: {detail.strip() or 'no file written'}")
    return artefact


def artefact_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the package, bytes) of every regular file; the archive's root folder is stripped from
    sdists and npm tarballs (``flask-3.1.0/``, ``package/``), wheels have none."""
    name = path.name.lower()
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir() and i.file_size <= MAX_MEMBER_BYTES]
            strip = not name.endswith(".whl")
            for info in infos:
                yield _strip_root(info.filename, strip), archive.read(info)
        return
    if name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        with tarfile.open(path) as archive:
            for member in archive:
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    yield _strip_root(member.name, True), handle.read()
        return
    raise TrainingError(f"{path.name}: not a wheel, sdist or npm tarball")


def _strip_root(member: str, strip: bool) -> str:
    parts = PurePosixPath(member.lstrip("./")).parts
    return str(PurePosixPath(*parts[1:])) if strip and len(parts) > 1 else str(PurePosixPath(*parts))


def _metadata_evidence(spec: PackageSpec, members: dict[str, bytes]) -> tuple[str, bool]:
    if spec.ecosystem == "npm":
        raw = members.get("package.json")
        if raw is None:
            return "no package.json", False
        try:
            expression = npm_license_expression(json.loads(raw))
        except (ValueError, AttributeError):
            return "unreadable package.json", False
        return expression or "no licence declared", bool(expression) and spdx_is_permissive(expression)
    metadata = next(
        (
            data
            for path, data in members.items()
            if path.endswith(".dist-info/METADATA") or path == "PKG-INFO"
        ),
        None,
    )
    if metadata is None:
        return "no METADATA / PKG-INFO", False
    return classify_license(email.message_from_bytes(metadata))


def package_licence(spec: PackageSpec, members: dict[str, bytes]) -> PackageLicence:
    """The metadata's verdict checked against the licence files the package ships."""
    evidence, permissive = _metadata_evidence(spec, members)
    verdicts = {
        path: license_text_verdict(data.decode("utf-8", errors="replace"))
        for path, data in members.items()
        # license.py / license.ts are code (an API client's "license" endpoint), not licence texts.
        if _LICENSE_NAME.match(PurePosixPath(path).name) and language_for_path(path) is None
    }
    licence = PackageLicence(evidence, {path: name for path, (name, _) in verdicts.items()})
    copyleft = [name for name, ok in verdicts.values() if not ok and name != UNRECOGNISED_LICENSE_TEXT]
    if not permissive:
        licence.reason = f"licence metadata not permissive: {evidence}"
    elif not licence.files:
        licence.reason = "no LICENSE/COPYING file in the package"
    elif copyleft:
        licence.reason = f"licence file with {copyleft[0]}"
    elif not any(ok for _, ok in verdicts.values()):
        licence.reason = "no licence file with a recognised permissive text"
    licence.permissive = not licence.reason
    return licence
