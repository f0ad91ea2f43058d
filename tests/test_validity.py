"""The rule that decides whether a fill may be written (infill/regions/validity.py) and the indentation a
regenerated region keeps (finalize.keep_indentation), on the real grammars and Python's own compiler.

Every case here was written broken by an earlier rule that only compared with the file whose gap is empty.
"""

from __future__ import annotations

import pytest

from infill.regions import document_parses, fill_is_valid, finalize_candidate

# From click 8.5.1, src/click/utils.py (get_app_dir), BSD-3-Clause, Copyright 2014 Pallets; the hole is where
# `os.path.expanduser("~")` was.
CLICK = '''import os
import sys

WIN = sys.platform.startswith("win")


def get_app_dir(app_name: str, roaming: bool = True, force_posix: bool = False) -> str:
    r"""Returns the config folder for the application."""
    if WIN:
        key = "APPDATA" if roaming else "LOCALAPPDATA"
        folder = os.environ.get(key)
        if folder is None:
            folder = <|fill|>
        return os.path.join(folder, app_name)
    if force_posix:
        return os.path.join(os.path.expanduser(f"~/.{_posixify(app_name)}"))
    return os.path.join(
        os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")),
        _posixify(app_name),
    )
'''


def click_gap() -> tuple[str, str]:
    at = CLICK.index("<|fill|>")
    return CLICK[:at], CLICK[at + len("<|fill|>") :]


def test_a_fill_that_leaves_the_gap_broken_is_rejected_though_the_empty_gap_is_broken_too() -> None:
    prefix, suffix = click_gap()
    assert not document_parses(prefix + suffix, "python")  # `folder = ` alone: the old baseline
    junk = "\n_get__get_\n        get_get__get_get__get__get_get__get__get_type_"  # what the model wrote
    assert not fill_is_valid(prefix, junk, suffix, "python")
    assert finalize_candidate(prefix, junk, suffix, "python", "span") is None
    assert fill_is_valid(prefix, 'os.path.expanduser("~")', suffix, "python")
    assert finalize_candidate(prefix, 'os.path.expanduser("~")', suffix, "python", "span") == (
        'os.path.expanduser("~")'
    )


@pytest.mark.parametrize(
    ("fill", "valid"),
    [
        ("    y = 2\n", True),
        ("      y = 2\n", False),  # unexpected indent: tree-sitter-python accepts it, Python does not
        ("y = 2\n", False),  # column 0 inside the body: the next line becomes an unexpected indent
        ("\ty = 2\n", False),  # a tab among spaces (TabError)
        ("    if x:\n", False),  # a block opened with nothing in it
        ("    if x:\n        y = 1\n", True),
        ("    return (x\n", False),
    ],
)
def test_python_fills_are_compiled(fill: str, valid: bool) -> None:
    prefix, suffix = "def f(x):\n    x = 1\n", "    return x\n\n\nprint(f(2))\n"
    assert fill_is_valid(prefix, fill, suffix, "python") is valid
    assert (finalize_candidate(prefix, fill, suffix, "python", "span") == fill) is valid


def test_errors_the_file_already_has_neither_reject_nor_excuse_a_fill() -> None:
    # Another gap still empty below in the same function, an empty block above: not the fill's doing.
    cases = [
        ("python", "def f(x):\n    x = ", "1", "1 +", "\n    y = \n    return x\n"),
        ("python", "def g(v):\n    if v:\n\n    total = ", "v * 2", "v * (", "\n    return total\n"),
        # A file broken far above (an unclosed call) does not make every fill below invalid, but the fill's
        # own line must parse, even when the empty gap already did not.
        (
            "go",
            "package main\n\nfunc broken() {\n\tfmt.Println(\n}\n\nfunc f() int {\n\treturn ",
            "1 + 2",
            "1 +",
            "\n}\n",
        ),
    ]
    for language, prefix, good, bad, suffix in cases:
        assert fill_is_valid(prefix, good, suffix, language)
        assert not fill_is_valid(prefix, bad, suffix, language)
        assert finalize_candidate(prefix, good, suffix, language, "span") == good
        # The broken fill is never written: its longest valid prefix is.
        assert finalize_candidate(prefix, bad, suffix, language, "span") == bad.split()[0]


@pytest.mark.parametrize(
    ("language", "prefix", "fill", "suffix", "shortened"),
    [
        ("javascript", "const t = ", "items.reduce((a, b) => a +", ";\nconsole.log(t);\n", "items.reduce"),
        ("go", "func f() int {\n\tx := ", "x :=", "\n\treturn x\n}\n", "x"),
        ("rust", "fn f() -> i32 {\n    let x = ", "1 +", ";\n    x\n}\n", "1"),
        ("c", "int f(void) {\n    int x = ", "(1", ";\n    return x;\n}\n", None),
    ],
)
def test_every_grammar_rejects_a_fill_that_leaves_its_own_line_broken(
    language: str, prefix: str, fill: str, suffix: str, shortened: str | None
) -> None:
    assert not document_parses(prefix + suffix, language)  # the gap left empty is broken already
    assert not fill_is_valid(prefix, fill, suffix, language)
    # Written instead: the longest prefix that is valid there, never the broken whole.
    assert finalize_candidate(prefix, fill, suffix, language, "span") == shortened


def test_a_regenerated_go_loop_keeps_its_tabs() -> None:
    from infill.regions.finalize import keep_indentation

    prefix = "package main\n\nfunc sum(xs []int) int {\n\ttotal := 0\n"
    suffix = "\treturn total\n}\n"
    # The model wrote the loop with two-space indentation, a whitespace-only line and no base indent.
    fill = "for _, x := range xs {\n  \n  total += x\n}\n"
    expected = "\tfor _, x := range xs {\n\n\t\ttotal += x\n\t}\n"
    assert keep_indentation(prefix, fill, suffix, "go", "\t") == expected
    assert finalize_candidate(prefix, fill, suffix, "go", "region", indent="\t") == expected
    # The bare identifier at column 0 the issue saw comes out at the loop's indentation.
    assert finalize_candidate(prefix, "from\n", suffix, "go", "region", indent="\t") == "\tfrom\n"


def test_python_regions_keep_the_files_spaces_and_leave_strings_alone() -> None:
    prefix, suffix = "def f(x):\n", "\nprint(f(1))\n"
    fill = '\tif x:\n\t\ttext = """\n\tkept as written\n"""\n\t\treturn text'
    expected = '    if x:\n        text = """\n\tkept as written\n"""\n        return text'
    assert finalize_candidate(prefix, fill, suffix, "python", "block", indent="    ") == expected
    assert document_parses(prefix + expected + suffix, "python")


def test_document_parses_uses_the_real_python_compiler() -> None:
    assert document_parses("def f():\n    return 1\n", "python")
    assert not document_parses("def f():\n    x = 1\n      y = 2\n", "python")  # tree-sitter: no error
    assert not document_parses("def f():\nreturn 1\n", "python")
    assert document_parses("f(a, [b]);", None) and not document_parses("f(a, [b);", None)
