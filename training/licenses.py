"""Which installed Python distributions are permissively licensed, read from their metadata.

Order of evidence: the SPDX ``License-Expression`` field (PEP 639) when present, else the ``License ::``
trove classifiers, else the free-text ``License`` field when it is short enough to be a name. Anything we
cannot classify is rejected: the default model must only learn from code we may redistribute it from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

# SPDX ids (lower-cased, "+"/"-only" stripped) of licences without copyleft obligations.
PERMISSIVE_SPDX = frozenset(
    {
        "mit",
        "mit-0",
        "mit-cmu",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsd-3-clause-clear",
        "0bsd",
        "apache-2.0",
        "psf-2.0",
        "python-2.0",
        "cnri-python",
        "isc",
        "zlib",
        "unlicense",
        "cc0-1.0",
        "bsl-1.0",
        "hpnd",
        "x11",
        "wtfpl",
    }
)
# Trove classifier suffixes (after "License :: OSI Approved :: ") that are permissive.
PERMISSIVE_CLASSIFIERS = (
    "MIT License",
    "MIT No Attribution License (MIT-0)",
    "BSD License",
    "Apache Software License",
    "Python Software Foundation License",
    "ISC License (ISCL)",
    "zlib/libpng License",
    "The Unlicense (Unlicense)",
    "Historical Permission Notice and Disclaimer (HPND)",
    "Boost Software License 1.0 (BSL-1.0)",
)
# Free-text License fields seen in the wild, matched at the start of the field.
_FREE_TEXT = re.compile(
    r"^\s*(the\s+)?(mit|bsd|apache|psf|python software foundation|isc|zlib|unlicense|new bsd"
    r"|simplified bsd)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DistributionLicense:
    name: str
    version: str
    license: str  # the evidence we used, as written in the metadata
    permissive: bool


def spdx_is_permissive(expression: str) -> bool:
    """True when some OR-alternative of the SPDX expression consists only of permissive licences."""
    cleaned = expression.replace("(", " ").replace(")", " ")
    for alternative in re.split(r"\s+OR\s+", cleaned, flags=re.IGNORECASE):
        parts = re.split(r"\s+AND\s+", alternative.strip(), flags=re.IGNORECASE)
        ids = [re.split(r"\s+WITH\s+", part.strip(), flags=re.IGNORECASE)[0].strip() for part in parts]
        ids = [i.lower().removesuffix("+").removesuffix("-only").removesuffix("-or-later") for i in ids]
        if ids and all(i in PERMISSIVE_SPDX for i in ids):
            return True
    return False


def classify_license(meta: metadata.PackageMetadata) -> tuple[str, bool]:
    """(evidence, permissive) for one distribution's metadata."""
    expression = meta.get("License-Expression")
    if expression:
        return expression, spdx_is_permissive(expression)
    classifiers = [c for c in (meta.get_all("Classifier") or []) if c.startswith("License ::")]
    osi = [c.removeprefix("License :: OSI Approved :: ") for c in classifiers if "OSI Approved ::" in c]
    if osi:
        return "; ".join(osi), all(c in PERMISSIVE_CLASSIFIERS for c in osi)
    free_text = (meta.get("License") or "").strip()
    first_line = free_text.splitlines()[0] if free_text else ""
    if first_line and len(first_line) <= 80:
        if spdx_is_permissive(first_line) or _FREE_TEXT.match(first_line):
            return first_line, not re.search(r"\b(L?GPL|AGPL|MPL|EUPL|CC-BY-SA)\b", first_line, re.I)
        return first_line, False
    return "unknown", False


def installed_distribution_licenses(exclude: frozenset[str] = frozenset()) -> list[DistributionLicense]:
    """Every installed distribution (deduplicated by name) with its licence verdict, sorted by name."""
    seen: dict[str, DistributionLicense] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        key = name.lower().replace("_", "-")
        if not name or key in seen or key in exclude:
            continue
        evidence, permissive = classify_license(dist.metadata)
        seen[key] = DistributionLicense(name, dist.version, evidence, permissive)
    return sorted(seen.values(), key=lambda d: d.name.lower())


# Licence texts (LICENSE / COPYING files shipped in a package), recognised by a phrase each licence's text
# has. Copyleft markers are checked first: a package whose licence files carry any of them is rejected
# even when its metadata says MIT (dual licences, bundled copyleft code).
_COPYLEFT_TEXT = re.compile(
    # The headers of the licence texts themselves (upper case), or the standard notices that point to them.
    # A permissive text may mention the GPL in passing (CPython's history section does): not enough.
    r"GNU (LESSER |LIBRARY |AFFERO )?GENERAL PUBLIC LICEN[CS]E|MOZILLA PUBLIC LICEN[CS]E"
    r"|(?i:terms of the GNU (Lesser |Library |Affero )?General Public Licen[cs]e)"
    r"|(?i:Mozilla Public License,? (Version|v\.?) ?[12])|(?i:Eclipse Public License)"
    r"|(?i:European Union Public Licen[cs]e)|(?i:Business Source License)|(?i:Server Side Public License)"
    r"|(?i:Elastic License)|(?i:Commons Clause)|(?i:Attribution-ShareAlike)"
)
UNRECOGNISED_LICENSE_TEXT = "unrecognised licence text"
_PERMISSIVE_TEXT = (  # most specific first: the PSF text quotes ISC-like CWI terms
    ("PSF-2.0", re.compile(r"PYTHON SOFTWARE FOUNDATION LICENSE", re.IGNORECASE)),
    ("Apache-2.0", re.compile(r"Apache License,?\s+Version 2\.0", re.IGNORECASE)),
    ("MIT", re.compile(r"Permission is hereby granted,? free of charge,? to any person", re.IGNORECASE)),
    ("BSD", re.compile(r"Redistribution and use in source and binary forms", re.IGNORECASE)),
    ("ISC", re.compile(r"Permission to use, copy, modify,? and(/or)? distribute this software", re.I)),
    ("Unlicense", re.compile(r"free and unencumbered software released into the public domain", re.I)),
    ("CC0-1.0", re.compile(r"CC0 1\.0 Universal", re.IGNORECASE)),
    ("BSL-1.0", re.compile(r"Boost Software License", re.IGNORECASE)),
    ("Zlib", re.compile(r"provided ['‘]as-is['’], without any express or implied warranty", re.I)),
)


def license_text_verdict(text: str) -> tuple[str, bool]:
    """(what the licence file is, permissive) for the text of one LICENSE/COPYING file."""
    flat = " ".join(text.split())
    copyleft = _COPYLEFT_TEXT.search(flat)
    if copyleft:
        return copyleft.group(0), False
    for name, pattern in _PERMISSIVE_TEXT:
        if pattern.search(flat):
            return name, True
    return UNRECOGNISED_LICENSE_TEXT, False


def npm_license_expression(package_json: dict) -> str:
    """The licence an npm package.json declares: the SPDX ``license`` string, or the legacy object/list."""
    declared = package_json.get("license")
    if isinstance(declared, dict):
        declared = declared.get("type")
    if not declared and isinstance(package_json.get("licenses"), list):
        types = [entry.get("type") for entry in package_json["licenses"] if isinstance(entry, dict)]
        declared = " OR ".join(t for t in types if isinstance(t, str))
    return declared.strip() if isinstance(declared, str) else ""
