"""``<|fill|>`` holes and ``infill:begin`` / ``infill:end`` regions, parsed with the real grammars."""

from __future__ import annotations

import pytest

from infill.errors import MarkerError
from infill.regions import HOLE, MarkedRegion, find_fill_markers, language_for_path


def replace_marks(text: str, marks: list[MarkedRegion], fills: list[str]) -> str:
    """Apply fills back to front, as an editor applies edits."""
    for mark, fill in sorted(zip(marks, fills, strict=True), key=lambda pair: pair[0].start, reverse=True):
        text = text[: mark.start] + fill + text[mark.end :]
    return text


def test_python_holes_and_a_region() -> None:
    text = (
        "import os\n"
        "\n"
        "def load(path):\n"
        "    # infill:begin\n"
        "    with open(path) as f:\n"
        "        return f.read()\n"
        "    # infill:end\n"
        "\n"
        "ROOT = os.path.join(<|fill|>, <|fill|>)\n"
    )
    marks = find_fill_markers(text, "python")
    assert [m.kind for m in marks] == ["region", "hole", "hole"]
    region, first, second = marks
    assert text[region.start : region.end] == (
        "    # infill:begin\n    with open(path) as f:\n        return f.read()\n    # infill:end"
    )
    assert text[region.fill_start : region.fill_end] == "    with open(path) as f:\n        return f.read()"
    assert region.indent == "    "
    for hole in (first, second):
        assert text[hole.start : hole.end] == HOLE
        assert hole.fill_start == hole.fill_end == hole.start
        assert hole.indent == ""
    filled = replace_marks(text, marks, ["    return open(path).read()", '"a"', '"b"'])
    assert filled == (
        'import os\n\ndef load(path):\n    return open(path).read()\n\nROOT = os.path.join("a", "b")\n'
    )


def test_javascript_region_and_hole() -> None:
    text = "function sum(xs) {\n  // infill:begin\n  // infill:end\n  return <|fill|>;\n}\n"
    region, hole = find_fill_markers(text, language_for_path("sum.js"))
    assert region.kind == "region" and hole.kind == "hole"
    assert region.fill_start == region.fill_end == text.index("  // infill:end")  # an empty region
    assert hole.indent == "  "
    filled = replace_marks(
        text, [region, hole], ["  let total = 0;\n  for (const x of xs) total += x;", "total"]
    )
    assert (
        filled
        == "function sum(xs) {\n  let total = 0;\n  for (const x of xs) total += x;\n  return total;\n}\n"
    )


def test_rust_doc_comment_style_markers() -> None:
    text = "fn main() {\n    /// infill:begin -- write the loop\n    let x = 1;\n    //infill:end\n}\n"
    (region,) = find_fill_markers(text, "rust")
    assert text[region.fill_start : region.fill_end] == "    let x = 1;"
    assert text[region.end :] == "\n}\n"


def test_go_markers_with_tabs_and_crlf() -> None:
    text = "func f() int {\r\n\t// infill:begin\r\n\treturn 1\r\n\t// infill:end\r\n}\r\n"
    (region,) = find_fill_markers(text, "go")
    assert region.indent == "\t"
    assert text[region.fill_start : region.fill_end] == "\treturn 1"
    assert text[region.start : region.end] == "\t// infill:begin\r\n\treturn 1\r\n\t// infill:end"


def test_unknown_language_accepts_hash_slash_and_dash_comments() -> None:
    assert language_for_path("build.lua") is None
    text = "-- infill:begin\nlocal x = 1\n-- infill:end\n# infill:begin\ny\n# infill:end\n"
    text += "// infill:begin\nz\n// infill:end\nw = <|fill|>\n"
    marks = find_fill_markers(text, None)
    assert [m.kind for m in marks] == ["region", "region", "region", "hole"]
    assert [text[m.fill_start : m.fill_end] for m in marks] == ["local x = 1", "y", "z", ""]


def test_python_marker_comments_need_hash_not_slashes() -> None:
    text = "x = 1\n// infill:begin\n"
    assert find_fill_markers(text, "python") == []  # `//` is floor division in Python, not a comment


def test_markers_inside_string_literals_do_not_count() -> None:
    text = 'HELP = """\n# infill:begin\nwrite code here\n# infill:end\n"""\n'
    assert find_fill_markers(text, "python") == []
    text = "const help = `\n// infill:begin\n`;\n"
    assert find_fill_markers(text, "javascript") == []
    text = 'let s = "\n// infill:end\n";\n'
    assert find_fill_markers(text, "rust") == []


def test_marker_words_in_ordinary_comments_are_ignored() -> None:
    text = "# Use infill:begin and infill:end comments to mark regions.\nx = 1\n"
    assert find_fill_markers(text, "python") == []
    text = "/**\n * infill:begin\n// infill:end\n */\nint x;\n"
    assert find_fill_markers(text, "c") == []  # inside a block comment: documentation, not markers


def test_holes_anywhere_and_non_ascii_offsets() -> None:
    text = 'greet = "你好 😀"  # <|fill|>\nname = "<|fill|>"\n'
    marks = find_fill_markers(text, "python")
    assert [text[m.start : m.end] for m in marks] == [HOLE, HOLE]
    assert marks[0].start == text.index(HOLE)  # a str index, not a byte offset
    assert find_fill_markers("no markers here\n", None) == []


@pytest.mark.parametrize(
    ("language", "text", "message"),
    [
        ("python", "x = 1\n# infill:end\n", "line 2: infill:end without infill:begin"),
        ("python", "# infill:end\n# infill:begin\n", "line 1: infill:end without infill:begin"),  # reversed
        ("python", "a\n\n  # infill:begin\nb\n", "line 3: infill:begin without infill:end"),
        (
            "javascript",
            "// infill:begin\nf();\n// infill:begin\n// infill:end\n// infill:end\n",
            "line 3: infill:begin inside the infill:begin region opened on line 1",
        ),
        (
            "rust",
            "// infill:begin\nlet x = <|fill|>;\n// infill:end\n",
            "line 2: <|fill|> inside the infill:begin region opened on line 1",
        ),
        ("go", "x := 1\n// infill:begin <|fill|>\n", "line 2: <|fill|> on an infill:begin marker line"),
        ("python", "a = 1\nb = 2  # infill:begin\n", "line 2: infill:begin must be on a line of its own"),
        ("c", "int x; // infill:end\n", "line 1: infill:end must be on a line of its own"),
        (None, "a\nb\n-- infill:end\n", "line 3: infill:end without infill:begin"),
        (None, "# infill:begin\n", "line 1: infill:begin without infill:end"),
    ],
)
def test_marker_errors_name_the_line(language: str | None, text: str, message: str) -> None:
    with pytest.raises(MarkerError) as caught:
        find_fill_markers(text, language)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_second_region_after_a_closed_one_is_fine() -> None:
    text = "# infill:begin\na\n# infill:end\n# infill:begin\nb\n# infill:end"
    first, second = find_fill_markers(text, "python")
    assert (first.kind, second.kind) == ("region", "region")
    assert second.end == len(text)  # the last line has no newline
    assert text[second.fill_start : second.fill_end] == "b"
