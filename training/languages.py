"""Language detection and tree-sitter parsers for the corpus.

Detection defers to ``infill.regions.language_for_path`` (one table for the whole project) when it is
importable; the local table only keeps training usable while that module is being written.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tree_sitter import Language, Parser

_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
}


def language_for_path(path: str | Path) -> str | None:
    try:
        from infill.regions import language_for_path as regions_language_for_path
    except ImportError:
        return _EXTENSIONS.get(Path(path).suffix.lower())
    return regions_language_for_path(path)


@functools.cache
def parser_for(language: str) -> Parser | None:
    """A tree-sitter parser for one of the project's language names (None when no grammar is installed)."""
    try:
        if language == "python":
            import tree_sitter_python as grammar

            return Parser(Language(grammar.language()))
        if language in ("typescript", "tsx"):
            import tree_sitter_typescript as ts

            fn = ts.language_tsx if language == "tsx" else ts.language_typescript
            return Parser(Language(fn()))
        module = {
            "javascript": "tree_sitter_javascript",
            "go": "tree_sitter_go",
            "rust": "tree_sitter_rust",
            "java": "tree_sitter_java",
            "c": "tree_sitter_c",
            "cpp": "tree_sitter_cpp",
        }.get(language)
        if module is None:
            return None
        grammar_module = __import__(module)
        return Parser(Language(grammar_module.language()))
    except ImportError:
        return None
