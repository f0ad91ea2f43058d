"""Language names, file-extension and LSP-id mapping, and the per-thread tree-sitter parser cache.

Language names are the nine with a bundled grammar; ``None`` means "unknown language": callers then get
line heuristics (indentation, bracket balance) instead of a syntax tree.
"""

from __future__ import annotations

import importlib
import logging
import threading
from functools import cache
from pathlib import Path

import tree_sitter

from infill.errors import UnsupportedLanguage

logger = logging.getLogger(__name__)

# (grammar wheel module, its capsule factory) per language; a wheel is imported on first use, so a request
# pays only for its own file's grammar.
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}
LANGUAGES: tuple[str, ...] = tuple(_GRAMMARS)

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".jsx": "javascript",  # tree-sitter-javascript parses JSX
    ".mjs": "javascript",
    ".cjs": "javascript",
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
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
}

_LSP_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
}

# Line-comment leaders accepted for infill:begin / infill:end markers.
_LINE_COMMENTS: dict[str, tuple[str, ...]] = {"python": ("#",)}
_BRACE_COMMENT = ("//",)
UNKNOWN_LINE_COMMENTS: tuple[str, ...] = ("#", "//", "--")

# One indentation step when a file gives no evidence of its own (gofmt uses tabs; prettier two spaces).
_DEFAULT_INDENT: dict[str, str] = {"go": "\t", "javascript": "  ", "typescript": "  ", "tsx": "  "}


def language_for_path(path: str | Path) -> str | None:
    """The language of a file by its extension (case-insensitive); None when there is no grammar for it."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


def language_for_lsp_id(language_id: str) -> str | None:
    """The language for an LSP ``languageId`` ("typescriptreact" -> "tsx"); None when unknown."""
    return _LSP_IDS.get(language_id)


def check_language(language: str | None) -> str | None:
    """Validate a language name: one of LANGUAGES or None (unknown: line heuristics)."""
    if language is not None and language not in _GRAMMARS:
        raise UnsupportedLanguage(
            f"unsupported language {language!r}: expected one of {', '.join(LANGUAGES)} (or none)"
        )
    return language


def is_brace_language(language: str | None) -> bool:
    """Blocks are delimited by braces (everything with a grammar except python)."""
    return language is not None and language != "python"


def line_comment_leaders(language: str | None) -> tuple[str, ...]:
    if language is None:
        return UNKNOWN_LINE_COMMENTS
    return _LINE_COMMENTS.get(language, _BRACE_COMMENT)


def default_indent_unit(language: str | None) -> str:
    return _DEFAULT_INDENT.get(language or "", "    ")


@cache
def ts_language(language: str) -> tree_sitter.Language:
    module, factory = _GRAMMARS[language]
    return tree_sitter.Language(getattr(importlib.import_module(module), factory)())


# Parsers are not thread-safe and the language server works off its protocol thread, so each thread
# keeps its own parser per language.
_local = threading.local()


def parser_for(language: str) -> tree_sitter.Parser:
    parsers: dict[str, tree_sitter.Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = tree_sitter.Parser(ts_language(language))
        logger.debug("created tree-sitter parser for %s", language)
    return parser
