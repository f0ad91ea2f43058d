"""The corpus archive: licence checks per package, filters, de-duplication, the manifest, merging, reading.

Packages are fake wheels and npm tarballs written into a download cache, so nothing touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest

from infill.errors import TrainingError
from training.archive import build_archive, main, merge_corpus
from training.corpus import accept_many, corpus_from_archive
from training.corpus_archive import read_manifest, read_records
from training.dedupe import duplicate_indices
from training.licenses import license_text_verdict, npm_license_expression

MIT = (
    "MIT License\n\nCopyright (c) 2024 Someone\n\nPermission is hereby granted, free of charge, to any "
    "person obtaining a copy of this software...\n"
)
APACHE = (
    "                                 Apache License\n                           Version 2.0, January 2004\n"
)
GPL = "                    GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n"
MODULE = (
    "def total(items):\n    result = 0\n    for item in items:\n        if item > {k}:\n"
    "            result += item * {k}\n    return result\n\n\nclass Counter{k}:\n"
    "    def __init__(self):\n        self.count = {k}\n"
)
SHARED = "def shared_helper(value):\n    return [value, value * 2, value * 3]\n\n\nVALUES = [1, 2, 3]\n"


def wheel(
    cache: Path,
    name: str,
    version: str,
    files: dict[str, str],
    *,
    license_expression: str,
    license_text: str | None,
) -> None:
    folder = cache / "pypi" / f"{name}-{version}"
    folder.mkdir(parents=True)
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr(
            f"{info}/METADATA",
            f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n"
            f"License-Expression: {license_expression}\n\n",
        )
        if license_text is not None:
            archive.writestr(f"{info}/licenses/LICENSE", license_text)
        for path, text in files.items():
            archive.writestr(path, text)


def npm_tarball(cache: Path, name: str, version: str, files: dict[str, str], *, license: object) -> None:
    folder = cache / "npm" / f"{name}-{version}"
    folder.mkdir(parents=True)
    members = {
        "package/package.json": json.dumps({"name": name, "version": version, "license": license}),
        "package/LICENSE": MIT,
        **{f"package/{p}": t for p, t in files.items()},
    }
    with tarfile.open(folder / f"{name}-{version}.tgz", "w:gz") as archive:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(package list, download cache) with one good package of each kind and three to reject."""
    root = tmp_path_factory.mktemp("packages")
    cache = root / "cache"
    good = {f"goodpkg/mod{k}.py": MODULE.format(k=k) for k in range(4)}
    good["goodpkg/_vendor/six.py"] = MODULE.format(k=99)  # vendored: skipped
    good["goodpkg/shared.py"] = SHARED
    # Code named like a licence file (an API client's endpoint) is code, not the package's licence.
    good["goodpkg/license.py"] = '"""Get the Elastic License status."""\n' + MODULE.format(k=8)
    good["goodpkg/settings.py"] = 'API_KEY = "aK9x2Lm4Qz7Rt1Yv8Bn3Cd6Fg5Hj0Kp2"\n' + MODULE.format(k=7)
    wheel(cache, "goodpkg", "1.0", good, license_expression="MIT", license_text=MIT)
    # To reject: a GPL package, one whose metadata says MIT but ships the GPL, one with no licence file.
    for k, (name, version, expression, text) in enumerate(
        (
            ("gplpkg", "2.0", "GPL-3.0-only", GPL),
            ("liarpkg", "1.0", "MIT", GPL),
            ("barepkg", "1.0", "Apache-2.0", None),
        ),
        start=11,
    ):
        files = {f"{name}/a.py": MODULE.format(k=k)}
        wheel(cache, name, version, files, license_expression=expression, license_text=text)
    js = {
        "index.js": "function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n",
        "lib/util.ts": "export function scale(xs: number[], k: number): number[] {\n"
        "  return xs.map((x) => x * k);\n}\n",
        "dist/bundle.js": "var a=1;\n" * 20,  # build output: skipped
        "shared.py": SHARED,  # the same file as goodpkg's: a duplicate
    }
    npm_tarball(cache, "leftpad", "1.3.0", js, license="MIT")
    listing = root / "packages.toml"
    listing.write_text(
        '[pypi]\npackages = ["goodpkg==1.0", "gplpkg==2.0", "liarpkg==1.0", "barepkg==1.0", "absent==9.9"]\n'
        '[npm]\npackages = ["leftpad@1.3.0"]\n'
    )
    return listing, cache


@pytest.fixture(scope="module")
def archive(packages: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    listing, cache = packages
    out = tmp_path_factory.mktemp("archive") / "corpus-archive"
    build_archive(listing, out, cache, offline=True)
    return out


def test_archive_keeps_only_permissive_packages_with_their_licence_files(
    archive: Path, packages: tuple[Path, Path]
) -> None:
    manifest = read_manifest(archive)
    used = {o["origin"]: o for o in manifest["origins"]}
    assert set(used) == {"pypi:goodpkg==1.0", "npm:leftpad@1.3.0"}
    assert used["pypi:goodpkg==1.0"]["license"] == "MIT"
    assert used["pypi:goodpkg==1.0"]["license_files"] == {"goodpkg-1.0.dist-info/licenses/LICENSE": "MIT"}
    assert used["npm:leftpad@1.3.0"]["license_files"] == {"LICENSE": "MIT"}
    tarball = next(packages[1].glob("npm/*/*.tgz"))
    assert used["npm:leftpad@1.3.0"]["artefact_sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    reasons = {r["origin"]: r["reason"] for r in manifest["rejected"]}
    assert reasons["pypi:gplpkg==2.0"].startswith("licence metadata not permissive")
    assert reasons["pypi:liarpkg==1.0"] == "licence file with GNU GENERAL PUBLIC LICENSE"
    assert reasons["pypi:barepkg==1.0"] == "no LICENSE/COPYING file in the package"
    assert "not in the download cache" in reasons["pypi:absent==9.9"]


def test_archive_filters_deduplicates_and_records_every_file(archive: Path) -> None:
    manifest = read_manifest(archive)
    records = list(read_records(archive))
    paths = {r.path for r in records}
    assert "pypi/goodpkg-1.0/goodpkg/mod0.py" in paths and "npm/leftpad-1.3.0/lib/util.ts" in paths
    assert not any("_vendor" in p or "/dist/" in p or "settings.py" in p for p in paths)
    assert sum(p.endswith("shared.py") for p in paths) == 1
    assert manifest["skipped"]["duplicate"] == 1 and manifest["skipped"]["vendored"] == 2
    assert manifest["skipped"]["secret assignment"] == 1
    for record in records:
        assert record.sha256 == hashlib.sha256(record.text.encode()).hexdigest()
        assert record.license in ("MIT",) and record.origin in ("pypi:goodpkg==1.0", "npm:leftpad@1.3.0")
    assert manifest["files"] == len(records) and manifest["chars"] == sum(len(r.text) for r in records)
    assert manifest["records"] == "files.jsonl.xz"
    data = (archive / "files.jsonl.xz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest["records_sha256"]
    assert lzma.decompress(data).count(b"\n") == len(records)
    assert {o["origin"]: o["files"] for o in manifest["origins"]} == {
        "pypi:goodpkg==1.0": sum(r.origin.startswith("pypi") for r in records),
        "npm:leftpad@1.3.0": sum(r.origin.startswith("npm") for r in records),
    }


def test_the_trainer_reads_an_archive_as_a_corpus(archive: Path) -> None:
    corpus = corpus_from_archive(archive, heldout_fraction=0.2)
    assert corpus.train and corpus.heldout
    assert {f.language for f in corpus.train + corpus.heldout} == {"python", "javascript", "typescript"}
    assert corpus.manifest["source"]["kind"] == "archive"
    assert {o["origin"] for o in corpus.manifest["source"]["origins"]} == {
        "pypi:goodpkg==1.0",
        "npm:leftpad@1.3.0",
    }
    assert corpus_from_archive(archive, heldout_fraction=0.2).manifest == corpus.manifest  # stable split


def test_merge_adds_the_machines_own_python_and_deduplicates_across(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    manifest = merge_corpus(
        [archive, archive], out, stdlib=True, max_chars_per_distribution=30_000, workers=2
    )
    origins = {o["origin"] for o in manifest["origins"] if o.get("files")}
    assert "pypi:goodpkg==1.0" in origins and any(o.startswith("stdlib:") for o in origins)
    records = list(read_records(out))
    assert len({r.path for r in records}) == len(records)  # the archive given twice: every copy dropped
    assert manifest["skipped"]["duplicate"] >= read_manifest(archive)["files"]
    assert manifest["records"] == "files.jsonl" and all(r.license for r in records)


def test_merge_with_installed_distributions_checks_their_licences(tmp_path: Path) -> None:
    manifest = merge_corpus([], tmp_path / "m", installed=True, max_chars_per_distribution=5_000)
    used = [o for o in manifest["origins"] if o.get("files")]
    assert used and all(o["origin"].startswith("installed:") for o in used)
    assert all(o["name"] != "infill" for o in manifest["origins"])
    rejected = {r["origin"].split("==")[0] for r in manifest["rejected"]}
    assert "installed:tqdm" in rejected  # MPL-2.0 AND MIT: not permissive


def test_corrupt_archive_and_bad_lists_fail_with_one_line(tmp_path: Path, archive: Path, capsys) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((archive / "manifest.json").read_text())
    (broken / "files.jsonl.xz").write_bytes((archive / "files.jsonl.xz").read_bytes()[:200])
    with pytest.raises(TrainingError, match="unreadable"):
        list(read_records(broken))
    with pytest.raises(TrainingError, match="not a corpus archive"):
        corpus_from_archive(tmp_path)
    listing = tmp_path / "list.toml"
    listing.write_text('[pypi]\npackages = ["unpinned"]\n')
    assert main(["build", "--packages", str(listing), "--offline", "--out", str(tmp_path / "o")]) == 2
    assert "not pinned as name==version" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        (MIT, ("MIT", True)),
        (APACHE, ("Apache-2.0", True)),
        ("Redistribution and use in source and binary forms, with or without\nmodification", ("BSD", True)),
        (GPL, ("GNU GENERAL PUBLIC LICENSE", False)),
        (
            "you can redistribute it under the terms of the GNU Lesser General\nPublic License",
            ("terms of the GNU Lesser General\nPublic License".replace("\n", " "), False),
        ),
        (
            "Mozilla Public License Version 2.0\n==================================",
            ("Mozilla Public License Version 2", False),
        ),
        # CPython's licence mentions the GPL in its history; it is the PSF licence all the same.
        (
            "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n...previously distributed under the GNU General "
            "Public License (GPL)",
            ("PSF-2.0", True),
        ),
        ("All rights reserved. Do not copy.", ("unrecognised licence text", False)),
    ],
)
def test_licence_files_are_recognised_by_their_text(text: str, verdict: tuple[str, bool]) -> None:
    assert license_text_verdict(text) == verdict


def test_npm_licence_forms() -> None:
    assert npm_license_expression({"license": "(MIT OR Apache-2.0)"}) == "(MIT OR Apache-2.0)"
    assert npm_license_expression({"license": {"type": "BSD-3-Clause"}}) == "BSD-3-Clause"
    assert npm_license_expression({"licenses": [{"type": "MIT"}, {"type": "GPL-2.0"}]}) == "MIT OR GPL-2.0"
    assert npm_license_expression({}) == ""


def test_parallel_screening_and_dedupe_match_the_sequential_ones() -> None:
    texts = [MODULE.format(k=k) for k in range(12)] + [SHARED, SHARED, "x = 1\n"]
    items = [(f"pkg/m{i}.py", text) for i, text in enumerate(texts)]
    assert accept_many(items, workers=2) == accept_many(items, workers=1)
    assert duplicate_indices(texts, workers=2) == duplicate_indices(texts, workers=1)
    files, skipped = accept_many(items, workers=2)
    assert skipped["too small"] == 1 and len(files) == len(texts) - 1


def test_section_budgets_cap_packages_and_leave_the_rest_unused(
    packages: tuple[Path, Path], tmp_path: Path
) -> None:
    _, cache = packages
    npm_tarball(
        cache, "rightpad", "2.0.0", {"index.js": "function pad(s) {\n  return s + ' ';\n}\n"}, license="MIT"
    )
    listing = tmp_path / "list.toml"
    listing.write_text(
        '[pypi]\nmax_chars_per_package = 300\npackages = ["goodpkg==1.0"]\n'
        '[npm]\nmax_chars = 10\npackages = ["leftpad@1.3.0", "rightpad@2.0.0"]\n'
    )
    manifest = build_archive(listing, tmp_path / "a", cache, offline=True)
    npm_files = [o["files"] for o in manifest["origins"] if o["ecosystem"] == "npm"]
    assert npm_files == [1] and manifest["unused"] == ["npm:rightpad@2.0.0"]
    assert manifest["max_chars_per_ecosystem"] == {"npm": 10}
    goodpkg = next(o for o in manifest["origins"] if o["origin"] == "pypi:goodpkg==1.0")
    assert goodpkg["files"] == 2 and manifest["skipped"]["over the per-package cap"] >= 3  # 2 files pass 300
