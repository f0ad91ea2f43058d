"""Region picking, selection expansion, function bodies and candidate finalization on the real grammars."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from infill.errors import InputError, UnsupportedLanguage
from infill.regions import (
    LANGUAGES,
    expand_selection,
    finalize_candidate,
    function_region,
    language_for_lsp_id,
    language_for_path,
    parse_error_count,
    pick_cursor_region,
)
from infill.regions.syntax import gap_error_counts


def cursors(marked: str) -> tuple[str, dict[str, int]]:
    """Strip ``@X@`` cursor markers from ``marked``; return the text and each marker's str offset."""
    text, found = marked, {}
    while "@" in text:
        at = text.index("@")
        name = text[at + 1]
        assert text[at + 2] == "@", f"bad marker at {at}"
        found[name] = at
        text = text[:at] + text[at + 3 :]
    return text, found


@dataclass(frozen=True)
class Sample:
    """A realistic file with cursors: L (a line), B (a blank line after a block opener), F (in a function)."""

    source: str
    line_covers_rest: bool  # only closing brackets follow L, so the line region swallows them
    block_indent: str
    function_body: str


SAMPLES: dict[str, Sample] = {
    "python": Sample(
        '''import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        """Area of the circle."""
        scale = math.pi@L@
        return scale * self.radius ** 2@F@

    def grow(self, factor):
        if factor > 1:
@B@
        return self
''',
        True,
        "            ",
        "        scale = math.pi\n        return scale * self.radius ** 2",
    ),
    "javascript": Sample(
        """const express = require("express");

function total(items) {
  let sum = 0;
  for (const item of items) {
    sum += item.price@L@;
  }
  return sum;
}

class Cart {
  constructor() {
    this.items = [];
  }

  add(item) {
    if (!item) {
@B@
    }
    this.items.push(item);@F@
  }
}
""",
        False,
        "      ",
        "    if (!item) {\n\n    }\n    this.items.push(item);",
    ),
    "typescript": Sample(
        """interface Point {
  x: number;
  y: number;
}

export function distance(a: Point, b: Point): number {
  const dx = a.x - b.x;
  const dy = a.y - b.y;
  return Math.sqrt(dx * dx + dy * dy@L@);
}

export const scale = (p: Point, k: number): Point => {
@B@
};

class Grid<T> {
  private cells: T[] = [];
  get(i: number): T {
    return this.cells[i];@F@
  }
}
""",
        False,
        "  ",
        "    return this.cells[i];",
    ),
    "tsx": Sample(
        """import React from "react";

type Props = { name: string };

export function Greeting({ name }: Props) {
  const upper = name.toUpperCase(@L@)
  return <h1>Hello {upper}</h1>;@F@
}

export const List = ({ items }: { items: string[] }) => {
  return (
    <ul>
      {items.map((item) => {
@B@
      })}
    </ul>
  );
};
""",
        True,
        "        ",
        "  const upper = name.toUpperCase()\n  return <h1>Hello {upper}</h1>;",
    ),
    "go": Sample(
        """package main

import "fmt"

type Stack struct {
	items []int
}

func (s *Stack) Push(v int) {
	s.items = append(s.items, v)@F@
}

func main() {
	s := &Stack{}
	s.Push(1)
	fmt.Println(@L@)
	for i := 0; i < 3; i++ {
@B@
	}
}
""",
        True,
        "\t\t",
        "\ts.items = append(s.items, v)",
    ),
    "rust": Sample(
        """use std::collections::HashMap;

pub struct Counter<'a> {
    counts: HashMap<&'a str, usize>,
}

impl<'a> Counter<'a> {
    pub fn add(&mut self, word: &'a str) {
        *self.counts.entry(word).or_insert(0) += 1;@F@
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum::<usize>(@L@)
    }
}

fn main() {
    let mut c = Counter { counts: HashMap::new() };
    for w in ["a", "b"] {
@B@
    }
}
""",
        True,
        "        ",
        "        *self.counts.entry(word).or_insert(0) += 1;",
    ),
    "java": Sample(
        """import java.util.List;

public class Stats {
    private final List<Integer> values;

    public Stats(List<Integer> values) {
        this.values = values;
    }

    public double mean() {
        double sum = 0;
        for (int v : values) {
            sum += v;@F@
        }
        return sum / values.size(@L@);
    }

    public int max() {
@B@
    }
}
""",
        False,
        "        ",
        "        double sum = 0;\n        for (int v : values) {\n            sum += v;\n        }\n"
        "        return sum / values.size();",
    ),
    "c": Sample(
        """#include <stdio.h>

static int square(int x) {
    return x * x;@F@
}

int main(void) {
    int total = 0;
    for (int i = 0; i < 10; i++) {
@B@
    }
    printf("%d\\n", total@L@);
    return 0;
}
""",
        False,
        "        ",
        "    return x * x;",
    ),
    "cpp": Sample(
        """#include <algorithm>
#include <vector>

namespace util {

template <typename T>
T largest(const std::vector<T>& xs) {
    return *std::max_element(xs.begin(), xs.end());@F@
}

}  // namespace util

int main() {
    std::vector<int> v{3, 1, 2};
    auto twice = [](int x) {
@B@
    };
    return util::largest(v@L@);
}
""",
        False,
        "        ",
        "    return *std::max_element(xs.begin(), xs.end());",
    ),
}


def test_every_grammar_has_a_sample() -> None:
    assert set(SAMPLES) == set(LANGUAGES)


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_sample_parses_cleanly(language: str) -> None:
    text, _ = cursors(SAMPLES[language].source)
    assert parse_error_count(text, language) == 0


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_auto_mode_completes_the_rest_of_the_line(language: str) -> None:
    sample = SAMPLES[language]
    text, at = cursors(sample.source)
    region = pick_cursor_region(text, at["L"], language)
    assert region.kind == "line" and region.stop_at_newline
    assert region.start == at["L"]
    line_end = text.index("\n", at["L"])
    if sample.line_covers_rest:
        assert region.end == line_end  # the closing brackets are regenerated with the line
        assert text[region.start : region.end].strip() in {")", ""}
    else:
        assert region.end == region.start  # code follows: an insertion that keeps it as suffix
    assert region.max_tokens == 48


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_auto_mode_fills_a_block_after_an_opener(language: str) -> None:
    sample = SAMPLES[language]
    text, at = cursors(sample.source)
    region = pick_cursor_region(text, at["B"], language)
    assert region.kind == "block" and not region.stop_at_newline
    assert (region.start, region.end) == (at["B"], at["B"])  # the blank line, its newline excluded
    assert region.indent == sample.block_indent
    assert region.max_tokens == 128


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_function_mode_takes_the_enclosing_body(language: str) -> None:
    sample = SAMPLES[language]
    text, at = cursors(sample.source)
    region = pick_cursor_region(text, at["F"], language, mode="function", max_tokens=100)
    assert region.kind == "function"
    assert text[region.start : region.end] == sample.function_body
    assert region.max_tokens == 100  # the caller's cap wins over the kind's 256
    assert (
        region.indent
        == sample.function_body[: len(sample.function_body) - len(sample.function_body.lstrip())]
    )


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_forced_modes(language: str) -> None:
    text, at = cursors(SAMPLES[language].source)
    line = pick_cursor_region(text, at["B"], language, mode="line")
    assert line.kind == "line" and line.start == at["B"]
    block = pick_cursor_region(text, at["L"], language, mode="block")
    assert block.kind == "block" and block.start == at["L"] and not block.stop_at_newline


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_function_mode_outside_any_function_is_an_input_error(language: str) -> None:
    text, _ = cursors(SAMPLES[language].source)
    with pytest.raises(InputError, match=r"^line 1: the cursor is not inside a function$"):
        pick_cursor_region(text, 0, language, mode="function")


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(InputError, match="offset 99 is outside the text"):
        pick_cursor_region("x = 1\n", 99, "python")
    with pytest.raises(InputError, match="unknown completion mode 'word'"):
        pick_cursor_region("x = 1\n", 0, "python", mode="word")
    with pytest.raises(UnsupportedLanguage, match="unsupported language 'cobol'"):
        pick_cursor_region("x = 1\n", 0, "cobol")


def test_block_indent_follows_existing_block_and_editor_indentation() -> None:
    text = "def f(x):\n\n    y = x\n    return y\n"
    region = pick_cursor_region(text, 10, "python")
    assert region.kind == "block" and region.indent == "    "  # the block below sets the depth
    text = "if (ok) {\n        \n}\n"
    region = pick_cursor_region(text, 18, "c")
    assert region.indent == "        "  # what the editor already put on the line wins
    assert (region.start, region.end) == (10, 18)


def test_indent_step_comes_from_the_files_own_blocks() -> None:
    # Doc-comment stars (one column) and aligned continuation lines must not decide the step.
    jsdoc = "/**\n * Adds.\n * @param a\n */\nfunction add(a,\n             b) {\n    return a + b;\n}\n"
    text = jsdoc + "function sub(a, b) {\n\n}\n"
    assert pick_cursor_region(text, len(jsdoc) + 21, "javascript").indent == "    "
    text = "def f():\n\treturn 1\n\n\nclass A:\n\n"
    assert pick_cursor_region(text, len(text) - 1, "python").indent == "\t"


def test_openers_inside_templates_and_interpolations_still_open_blocks() -> None:
    text = "template <typename T>\nT twice(T x) {\n\n}\n"
    assert pick_cursor_region(text, text.index("{\n") + 2, "cpp").kind == "block"
    text = "const s = `${items.map((x) => {\n\n})}`;\n"
    assert pick_cursor_region(text, text.index("{\n") + 2, "javascript").kind == "block"


def test_opener_inside_a_comment_or_string_does_not_open_a_block() -> None:
    text = "x = 1  # see below:\n\ny = 2\n"
    assert pick_cursor_region(text, 20, "python").kind == "line"
    text = "const s = `a {\n\nb`;\n"
    assert pick_cursor_region(text, 15, "javascript").kind == "line"
    text = "let a = 1; // {\n\n"
    assert pick_cursor_region(text, 16, "rust").kind == "line"


def test_unknown_language_uses_line_heuristics() -> None:
    text = "function f(x)\n  if x then\n\n  end\nend\n"
    region = pick_cursor_region(text, text.index("\n\n") + 1, None)
    assert region.kind == "line"  # `then` is no opener we know
    text = "sub greet {\n\n}\n"
    region = pick_cursor_region(text, 12, None)
    assert region.kind == "block" and region.indent == "    "
    text = "proc main =\n  echo 1\n  echo 2\n\nmain()\n"
    body = function_region(text, text.index("echo 2"), None)
    assert body is not None and text[body.start : body.end] == "  echo 1\n  echo 2"
    text = "local function add(a, b) {\n  return a + b\n}\n"
    body = function_region(text, text.index("return"), None)
    assert body is not None and text[body.start : body.end] == "  return a + b"
    assert function_region("x = 1\n", 2, None) is None


# --- function_region on every grammar: innermost function, nested closures, one-line bodies ---

FUNCTIONS: list[tuple[str, str, str]] = [
    # (language, source with @F@, expected body)
    (
        "python",
        "def outer():\n    def inner(a):\n        return a@F@ * 2\n    return inner\n",
        "        return a * 2",
    ),
    ("python", "def one(x): return x@F@ + 1\n", "return x + 1"),
    ("python", 'def stub(x):\n    """Double x."""@F@\n\n\ndef other():\n    pass\n', ""),
    ("python", "class A:\n    async def get(self):\n        await self.x@F@\n", "        await self.x"),
    (
        "javascript",
        "const f = (a) => {\n  const g = (b) => b * 2@F@;\n  return g(a);\n}\n",
        "  const g = (b) => b * 2;\n  return g(a);",
    ),
    ("javascript", "function* gen() {\n  yield 1;@F@\n}\n", "  yield 1;"),
    # Still being typed: the closing brace is missing, the body runs to the end of what is there.
    ("javascript", "function f() {\n  a();@F@\n  b();\n", "  a();\n  b();"),
    ("javascript", "obj.on('x', function () { run()@F@; });\n", " run(); "),
    (
        "typescript",
        "abstract class S {\n  abstract area(): number;\n"
        "  describe(): string {\n    return `area`;@F@\n  }\n}\n",
        "    return `area`;",
    ),
    (
        "tsx",
        "function App() {\n  const onClick = () => {\n    setCount(c => c + 1);@F@\n  };\n"
        "  return <b />;\n}\n",
        "    setCount(c => c + 1);",
    ),
    ("go", "func main() {\n\tgo func() {\n\t\tdone <- true@F@\n\t}()\n}\n", "\t\tdone <- true"),
    ("go", "func empty() {\n}@F@\n", ""),
    (
        "rust",
        "fn apply() -> i32 {\n    let f = |x: i32| {\n        x + 1@F@\n    };\n    f(1)\n}\n",
        "        x + 1",
    ),
    (
        "rust",
        "fn main() {\n    let v: Vec<_> = xs.iter().map(|x| x * 2@F@).collect();\n}\n",
        "    let v: Vec<_> = xs.iter().map(|x| x * 2).collect();",
    ),
    (
        "java",
        "class A {\n  void run() {\n    Runnable r = () -> {\n      go();@F@\n    };\n  }\n}\n",
        "      go();",
    ),
    ("java", "class A {\n  A() {\n    super();@F@\n  }\n}\n", "    super();"),
    ("c", "int f(void) {\n\n    return 1;@F@\n\n}\n", "    return 1;"),  # blank edge lines stay outside
    ("c", "int f(void) {\n  \n@F@\n}\n", "  "),  # only blank lines: the first is the region
    ("cpp", "struct S {\n  int get() const { return v_@F@; }\n  int v_;\n};\n", " return v_; "),
    (
        "cpp",
        "int main() {\n    auto l = [](int x) {\n        return x@F@ * 2;\n    };\n}\n",
        "        return x * 2;",
    ),
]


@pytest.mark.parametrize(("language", "marked", "expected"), FUNCTIONS)
def test_function_region_on_each_grammar(language: str, marked: str, expected: str) -> None:
    text, at = cursors(marked)
    region = function_region(text, at["F"], language)
    assert region is not None
    assert text[region.start : region.end] == expected
    assert region.kind == "function" and not region.stop_at_newline


def test_function_region_signature_is_outside_the_body() -> None:
    text = "func add(a int, b int) int {\n\treturn a + b\n}\n"
    region = function_region(text, text.index("b int"), "go")  # cursor on the signature
    assert region is not None and text[region.start : region.end] == "\treturn a + b"


def test_python_blank_line_below_a_body_belongs_to_the_function_when_indented() -> None:
    text = "def f(x):\n    y = x\n    \nz = 1\n"
    region = function_region(text, text.index("    \n") + 4, "python")
    assert region is not None and text[region.start : region.end] == "    y = x"
    text = "def f(x):\n    y = x\n\nz = 1\n"
    assert function_region(text, text.index("\n\n") + 1, "python") is None


def test_offsets_are_characters_not_bytes() -> None:
    # Every line before the cursor holds multi-byte characters (emoji: 4 bytes, CJK: 3 bytes).
    text = (
        'greeting = "😀 你好"\n\ndef wave(name):\n    """挥手 👋"""\n    msg = "👋 " + name\n    return msg\n'
    )
    region = function_region(text, text.index("msg ="), "python")
    assert region is not None and text[region.start : region.end] == '    msg = "👋 " + name\n    return msg'
    selection = expand_selection(text, text.index("+ name"), text.index("+ name") + 1, "python")
    assert text[selection.start : selection.end] == '    msg = "👋 " + name'
    js = 'const s = "😀😀😀";\nfunction f() {\n  return "漢字";\n}\n'
    region = function_region(js, js.index("return"), "javascript")
    assert region is not None and js[region.start : region.end] == '  return "漢字";'
    line = pick_cursor_region(js, js.index('"漢字"') + 3, "javascript")
    assert (line.start, line.end) == (js.index('"漢字"') + 3, js.index('"漢字"') + 3)
    block_text = "s = '🎉'\nif s:\n\n"
    block = pick_cursor_region(block_text, len(block_text) - 1, "python")
    assert block.kind == "block" and block.start == len(block_text) - 1


# --- expand_selection ---

SELECTIONS: list[tuple[str, str, str]] = [
    # (language, source with @S@...@E@ selection, expected region text)
    (
        "python",
        "def f(a):\n    x = a@S@ + 1\n    y = x@E@ * 2\n    return y\n",
        "    x = a + 1\n    y = x * 2",
    ),
    ("python", "for i in range(3):\n    print(i@S@)@E@\n    print(i)\n", "    print(i)"),
    ("python", "if ok:\n    run(@S@1@E@,\n        2)\nelse:\n    stop()\n", "    run(1,\n        2)"),
    (
        "python",
        "if o@S@k@E@:\n    run()\nelse:\n    stop()\ndone()\n",
        "if ok:\n    run()\nelse:\n    stop()",
    ),
    # A body and the clause after it are no run of statements: the whole try statement is.
    ("python", "try:\n    @S@a()\nexcept E:\n    b()@E@\nc()\n", "try:\n    a()\nexcept E:\n    b()"),
    (
        "javascript",
        "function f() {\n  const a = 1;\n  const b = a@S@ + 2;\n  return b@E@;\n}\n",
        "  const b = a + 2;\n  return b;",
    ),
    # Arguments on lines of their own are complete nodes covering whole lines.
    ("typescript", "const x: number = compute(\n  @S@1,\n  2@E@,\n);\nlog(x);\n", "  1,\n  2,"),
    (
        "typescript",
        "const a = f(\n  1@S@,\n);\nconst b@E@ = 2;\nlog(a);\n",
        "const a = f(\n  1,\n);\nconst b = 2;",
    ),
    ("go", "func f() {\n\tif x {\n\t\ty@S@()\n\t}@E@\n\tz()\n}\n", "\tif x {\n\t\ty()\n\t}"),
    ("rust", "fn f() {\n    let a = 1; // one\n    let b@S@@E@ = 2;\n}\n", "    let b = 2;"),
    ("java", "class A {\n  void f() {\n    int a = 1;@S@\n    int b = 2;\n@E@  }\n}\n", "    int b = 2;"),
    ("c", "int f() {\n    return g(1,@S@ 2);@E@\n}\n", "    return g(1, 2);"),
    ("javascript", "function f() {\n  a(); @S@b();@E@\n  c();\n}\n", "  a(); b();"),
    ("cpp", "void f() {\n    a();\n@S@    b();\n    c();@E@\n}\n", "    b();\n    c();"),
    ("tsx", "const el = (\n  <div>\n    <p>@S@hi@E@</p>\n  </div>\n);\n", "    <p>hi</p>"),
    (None, "block {\n  a(1,@S@\n    2)\n  b()@E@\n}\nafter\n", "  a(1,\n    2)\n  b()"),
    (None, "x = [1,\n 2]@S@@E@\n", "x = [1,\n 2]"),
    (None, "if x:@S@@E@\n    y\n    z\nw\n", "if x:\n    y\n    z"),
]


@pytest.mark.parametrize(("language", "marked", "expected"), SELECTIONS)
def test_expand_selection_to_enclosing_statements(language: str | None, marked: str, expected: str) -> None:
    text, at = cursors(marked)
    region = expand_selection(text, at["S"], at["E"], language)
    assert text[region.start : region.end] == expected
    assert region.kind == "selection" and not region.stop_at_newline
    assert region.indent == expected[: len(expected) - len(expected.lstrip(" \t"))]


def test_expand_selection_accepts_a_reversed_selection() -> None:
    text = "a = 1\nb = 2\nc = 3\n"
    region = expand_selection(text, 9, 2, "python")
    assert text[region.start : region.end] == "a = 1\nb = 2"
    assert region.max_tokens == 128


def test_expand_selection_budget_grows_with_the_old_code() -> None:
    body = "".join(f"    x{i} = compute({i}, {i + 1}, {i + 2})\n" for i in range(60))
    text = f"def f():\n{body}"
    region = expand_selection(text, 10, len(text) - 2, "python")
    assert region.max_tokens > 128  # ~2,400 characters of old code need more than the default
    assert region.max_tokens <= 1024


# --- language mapping ---


def test_language_for_path_and_lsp_id() -> None:
    assert language_for_path("a/b/c.py") == "python"
    assert language_for_path("App.TSX") == "tsx"
    assert language_for_path("x.mjs") == "javascript"
    assert language_for_path("x.hpp") == "cpp"
    assert language_for_path("x.h") == "c"
    assert language_for_path("init.lua") is None
    assert language_for_path("Makefile") is None
    assert language_for_lsp_id("typescriptreact") == "tsx"
    assert language_for_lsp_id("javascriptreact") == "javascript"
    assert {language_for_lsp_id(i) for i in ("python", "go", "rust", "java", "c", "cpp", "typescript")} == {
        "python",
        "go",
        "rust",
        "java",
        "c",
        "cpp",
        "typescript",
    }
    assert language_for_lsp_id("haskell") is None


# --- parse errors and finalize_candidate ---


def test_parse_error_count_counts_error_and_missing_nodes() -> None:
    assert parse_error_count("def f(x):\n    return x\n", "python") == 0
    assert parse_error_count("def f(x:\n    return x\n", "python") >= 1
    assert parse_error_count("int f() { return 1 }", "c") == 1  # a MISSING ";"
    assert parse_error_count("f(a, [b]);", None) == 0
    assert parse_error_count("f(a, [b);", None) > 0
    assert parse_error_count('f(")"); // )', None) == 0  # brackets in strings and comments do not count


def test_a_candidate_that_adds_a_parse_error_is_rejected() -> None:
    prefix, suffix = "def area(w, h):\n    return ", "\n"
    assert finalize_candidate(prefix, "w * h", suffix, "python", "line") == "w * h"
    # Not valid as a whole: the longest valid prefix is the fill (it was discarded whole once).
    assert finalize_candidate(prefix, "w *", suffix, "python", "line") == "w"
    assert finalize_candidate("const xs = ", "[1, 2]", ";\n", "javascript", "line") == "[1, 2]"
    assert finalize_candidate("const xs = [", "1, (2", "];\n", "javascript", "line") == "1,"
    assert finalize_candidate("let n = max(", "1, 2", ");\n", "rust", "span") == "1, 2"
    assert finalize_candidate("let n = max(", "1 2", ");\n", "rust", "span") == "1"
    assert finalize_candidate("x = f(", "a, [b)", ")\n", None, "span") == "a,"


def test_an_error_elsewhere_in_the_file_does_not_reject_a_good_candidate() -> None:
    prefix = "def broken(:\n    pass\n\n\ndef area(w, h):\n    return "
    assert parse_error_count(prefix + "\n", "python") > 0
    assert finalize_candidate(prefix, "w * h", "\n", "python", "line") == "w * h"
    assert finalize_candidate(prefix, "w h", "\n", "python", "line") == "w"
    go = "package main\n\nfunc broken( {\n}\n\nfunc f() int {\n\treturn "
    assert finalize_candidate(go, "1 + 2", "\n}\n", "go", "line") == "1 + 2"


def test_a_candidate_that_fixes_the_gap_is_kept() -> None:
    # `x = ` alone does not parse; the fill makes it parse: fewer errors than without it.
    assert finalize_candidate("x = ", "42", "\nprint(x)\n", "python", "line") == "42"


def test_suffix_is_never_duplicated() -> None:
    assert finalize_candidate('print("hi', '")', '")\n', "python", "line") == ""
    assert finalize_candidate("total = sum(", "values)", ")\n", "python", "line") == "values"
    assert finalize_candidate("foo(", "bar(x)", ")\n", "javascript", "line") == "bar(x)"  # `)` is needed
    body = finalize_candidate(
        "int f(int x) {\n", "    int y = x * 2;\n    return y;\n}\n", "    return y;\n}\n", "c", "function"
    )
    assert body == "    int y = x * 2;\n"
    block = finalize_candidate(
        "def f(x):\n", "    y = x + 1\n    return y", "\n    return y\n", "python", "block"
    )
    assert block == "    y = x + 1"
    # A shared identifier is no duplicate: only closing punctuation or whole lines are dropped.
    assert finalize_candidate("a = ", "b + c", "c.d()\n", None, "span") == "b + c"
    assert finalize_candidate("area = ", "math.pi * r ** 2", " * r ** 2\n", "python", "span") == "math.pi"


def test_line_kind_cuts_at_the_first_newline() -> None:
    prefix = "def f(x):\n    y = "
    assert finalize_candidate(prefix, "x + 1\n    return y\n", "\n", "python", "line") == "x + 1"
    # A whole-line gap (the suffix starts the next line) keeps the newline.
    prefix, suffix = "def f(x):\n", "    return y\n"
    assert finalize_candidate(prefix, "    y = x\n    z = 1\n", suffix, "python", "line") == "    y = x\n"
    assert finalize_candidate(prefix, "    y = x", suffix, "python", "line") == "    y = x\n"
    assert finalize_candidate("x = foo(", "a, b))\ny = 2", ")\n", "python", "line") == "a, b"
    assert finalize_candidate("x = foo(a,\n    ", "b)\nrest", "\n", "python", "line") == "b)"


def test_line_fill_gets_back_closers_the_line_region_swallowed() -> None:
    # `print(|)` with the `)` inside the line region: a fill without it is completed when that parses.
    assert finalize_candidate("print(", "total", "\nrun()\n", "python", "line") == "total)"
    assert finalize_candidate("x = [f(", "1", "\n", "python", "line") == "1)]"
    # ...but an open call continued on the next line stays open.
    assert finalize_candidate("call(", "a,", "\n    b)\n", "python", "line") == "a,"


def test_block_kind_stops_at_a_dedent() -> None:
    prefix, suffix = "def f(x):\n    if x:\n", "\n    return 0\n"
    candidate = "        y = x * 2\n        return y\n    return 1\nprint(f(2))\n"
    assert (
        finalize_candidate(prefix, candidate, suffix, "python", "block")
        == "        y = x * 2\n        return y"
    )


def test_block_dedent_inside_a_multi_line_string_is_not_the_end() -> None:
    prefix, suffix = "def usage():\n", "\n\nmain()\n"
    candidate = '    text = """\nUsage: tool [options]\n"""\n    return text\nmain()\n'
    expected = '    text = """\nUsage: tool [options]\n"""\n    return text'
    assert finalize_candidate(prefix, candidate, suffix, "python", "block") == expected
    js = finalize_candidate(
        "function f() {\n", "  const s = `a\nb`;\n  return s;\n}\n", "\n}\n", "javascript", "block"
    )
    assert js == "  const s = `a\nb`;\n  return s;"


def test_block_kind_stops_at_an_unmatched_closing_bracket() -> None:
    prefix, suffix = "int main(void) {\n    for (;;) {\n", "\n    }\n}\n"
    candidate = "        step();\n        if (done()) { break; }\n    }\n    return 0;\n}\n"
    assert (
        finalize_candidate(prefix, candidate, suffix, "c", "block")
        == "        step();\n        if (done()) { break; }"
    )
    # Even without a dedent: a closer after code on the same line is cut just before it.
    text = finalize_candidate("fn main() {\n", "    run(); }", "\n}\n", "rust", "block")
    assert text == "    run();"


def test_multi_line_fill_ends_with_a_newline_when_the_suffix_starts_a_line() -> None:
    prefix, suffix = "def f():\n    # infill:begin\n", "    # infill:end\n    return 1\n"
    assert finalize_candidate(prefix, "    a = 1", suffix, "python", "region") == "    a = 1\n"


def test_finalize_returns_empty_text_when_the_cut_leaves_nothing() -> None:
    assert finalize_candidate("fn main() {\n", "}\nfn other() {}\n", "\n}\n", "rust", "block") == ""


def test_unknown_language_finalize_uses_bracket_balance() -> None:
    assert finalize_candidate("(define (sq x) ", "(* x x)", ")\n", None, "span") == "(* x x)"
    assert finalize_candidate("(define (sq x) ", "(* x x", ")\n", None, "span") is None


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_incremental_gap_parses_match_full_parses(language: str) -> None:
    """finalize_candidate re-parses incrementally; the counts must equal parsing each text from scratch."""
    text, at = cursors(SAMPLES[language].source)
    prefix, suffix = text[: at["F"]], text[at["F"] :]
    fills = ["", "x", " (", "\n  ä😀 = 1;\n", "}\n}\n", '"漢字"', "\n\n\n", "/*", "{ {"]
    baseline, counts = gap_error_counts(prefix, fills, suffix, language)
    assert baseline == parse_error_count(prefix + suffix, language)
    assert counts == [parse_error_count(prefix + fill + suffix, language) for fill in fills]
    assert max(counts) > baseline  # some of these fills do break the file


def test_openers_with_trailing_comments_and_object_literals() -> None:
    text = "for x in xs:  # each item\n\n"
    region = pick_cursor_region(text, len(text) - 1, "python")
    assert (region.kind, region.indent) == ("block", "    ")
    text = "const config = {\n\n};\n"
    region = pick_cursor_region(text, 17, "javascript")
    assert (region.kind, region.indent) == ("block", "  ")
    text = "func main() {\n\n}\n"
    assert pick_cursor_region(text, 14, "go").indent == "\t"  # gofmt indents with tabs


def test_regions_know_nothing_about_models() -> None:
    heavy = ("torch", "transformers", "pygls")
    code = f"import sys, infill.regions\nprint([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_regions_are_well_formed_at_every_offset(language: str) -> None:
    """Sweep cursors and selections over a whole file: regions stay inside it, hold the cursor, and
    selections come out as whole lines that cover what was selected."""
    text, _ = cursors(SAMPLES[language].source)
    text = "# 😀 漢字\n" + text if language == "python" else "// 😀 漢字\n" + text
    line_starts = {0} | {i + 1 for i, ch in enumerate(text) if ch == "\n"}
    line_ends = {i for i, ch in enumerate(text) if ch == "\n"} | {len(text)}
    for offset in range(0, len(text) + 1, 3):
        region = pick_cursor_region(text, offset, language)
        assert region.start <= offset <= region.end or region.kind == "block"
        assert 0 <= region.start <= region.end <= len(text)
        body = function_region(text, offset, language)
        assert body is None or 0 <= body.start <= body.end <= len(text)
        end = min(len(text), offset + 7 * (offset % 5))
        selection = expand_selection(text, offset, end, language)
        assert selection.start in line_starts and selection.end in line_ends
        selected = text[offset:end].strip()
        assert selection.start <= offset + (len(text[offset:end]) - len(text[offset:end].lstrip()))
        assert not selected or text.find(selected, selection.start) + len(selected) <= selection.end


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_the_true_middle_survives_finalization(language: str) -> None:
    """Cut real gaps out of a file and hand back the original text followed by more of the file (as a
    model that ran on would): finalization must return exactly the original, for lines and bodies."""
    text, at = cursors(SAMPLES[language].source)
    position = 0
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        line = text[position:end]
        code_start = position + len(line) - len(line.lstrip())
        for cursor in {code_start, (code_start + end) // 2}:
            if cursor >= end:
                continue
            prefix, middle, suffix = text[:cursor], text[cursor:end], text[end:]
            finalized = finalize_candidate(prefix, middle + suffix[:40], suffix, language, "line")
            assert finalized == middle, (cursor, middle)
        position = end + 1
    body = function_region(text, at["F"], language)
    selection = expand_selection(text, at["L"], at["F"], language)
    for region in (body, selection):
        assert region is not None
        prefix, middle, suffix = text[: region.start], text[region.start : region.end], text[region.end :]
        assert finalize_candidate(prefix, middle + suffix, suffix, language, region.kind) == middle
