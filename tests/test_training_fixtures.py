"""Real temporary git repositories for the training tests (imported by the other test_training_* files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Distinct small modules: enough structure (functions, blocks, lines) for span sampling and a held-out split.
SOURCES = {
    f"pkg/mod_{name}.py": (
        f'"""Module {name}."""\n\n\n'
        f"def {name}_total(items):\n"
        f"    total = 0\n"
        f"    for item in items:\n"
        f"        if item > {k}:\n"
        f"            total += item * {k + 1}\n"
        f"    return total\n\n\n"
        f"class {name.title()}Counter:\n"
        f"    def __init__(self, start={k}):\n"
        f"        self.count = start\n\n"
        f"    def bump(self, step=1):\n"
        f"        self.count += step\n"
        f"        return self.count\n"
    )
    for k, name in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])
}
SOURCES["web/app.js"] = (
    "function add(a, b) {\n  return a + b;\n}\n\nexport function scale(xs, k) {\n"
    "  const out = [];\n  for (const x of xs) {\n    out.push(x * k);\n  }\n  return out;\n}\n"
)


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


def make_repo(path: Path, files: dict[str, str], commit: bool = True) -> Path:
    """``git init`` a repository at ``path`` holding ``files``; add and commit them all."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if commit and files:
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "init")
    return path


def test_make_repo_tracks_the_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True).stdout
    assert tracked.split() == ["a.py"]
