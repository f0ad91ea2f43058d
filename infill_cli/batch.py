"""`infill batch IN.jsonl -o OUT.jsonl`: fill many (prompt, suffix) rows, batched on the device.

Input rows: `{"task_id", "prompt", "suffix"}` (other keys ignored); output rows `{"task_id", "completion"}` in
input order, where the completion is exactly the text between prompt and suffix (HumanEval-infilling style).
The output file is written atomically once every row is done.
"""

from __future__ import annotations

import argparse
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from infill.errors import InputError
from infill_cli.common import (
    add_decode_options,
    add_model_options,
    check_model,
    decode_config,
    load_infiller,
    positive_int,
)
from infill_cli.fileio import check_writable, read_source, read_source_bytes, write_atomic

DEFAULT_MAX_TOKENS = 64
DEFAULT_BATCH_SIZE = 16


def batch_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "batch",
        help="fill every (prompt, suffix) row of a JSONL file",
        description=(
            'Read rows {"task_id", "prompt", "suffix"} and write rows {"task_id", "completion"}, '
            "the completion being exactly the text between prompt and suffix."
        ),
    )
    parser.add_argument("input", metavar="IN.jsonl", help="input rows, one JSON object per line")
    parser.add_argument(
        "-o", "--output", metavar="OUT.jsonl", required=True, help="where to write completions"
    )
    parser.add_argument(
        "--mode",
        choices=("line", "block", "span"),
        default="span",
        help="line: stop at the end of the line; block/span: free length (default: span)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="rows per forward pass batch"
    )
    add_model_options(parser)
    add_decode_options(parser, max_tokens_help=f"token budget per row (default: {DEFAULT_MAX_TOKENS})")
    parser.set_defaults(func=batch_command)
    return parser


@dataclass(frozen=True)
class BatchRow:
    task_id: str | int
    prompt: str
    suffix: str


def _jsonl_text(path: Path) -> str:
    """The text of a JSONL file, gunzipped when it ends in .gz (as the benchmark sets ship)."""
    if path.suffix != ".gz":
        return read_source(path).text
    try:
        data = gzip.decompress(read_source_bytes(path))
    except (OSError, EOFError) as error:
        raise InputError(f"{path}: not a valid gzip file ({error})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text once decompressed") from None


def read_rows(path: str | Path) -> list[BatchRow]:
    """Parse and validate a JSONL file; the first problem is reported as `PATH:LINE: ...`."""
    path = Path(path)
    rows: list[BatchRow] = []
    first_line: dict[str | int, int] = {}
    for number, line in enumerate(_jsonl_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: invalid JSON: {error.msg} (column {error.colno})") from None
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(value).__name__}")
        for key in ("task_id", "prompt", "suffix"):
            if key not in value:
                raise InputError(f"{where}: missing key {key!r}")
        task_id, prompt, suffix = value["task_id"], value["prompt"], value["suffix"]
        if isinstance(task_id, bool) or not isinstance(task_id, str | int):
            raise InputError(f"{where}: task_id must be a string or an integer")
        if not isinstance(prompt, str) or not isinstance(suffix, str):
            raise InputError(f"{where}: prompt and suffix must be strings")
        if task_id in first_line:
            raise InputError(f"{where}: duplicate task_id {task_id!r} (first on line {first_line[task_id]})")
        first_line[task_id] = number
        rows.append(BatchRow(task_id, prompt, suffix))
    if not rows:
        raise InputError(f"{path}: no rows (the file is empty)")
    return rows


def batch_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    rows = read_rows(args.input)
    output = Path(args.output)
    if output.is_dir():
        raise InputError(f"{output}: is a directory")
    if not output.parent.is_dir():
        raise InputError(f"{output.parent}: no such directory")
    check_writable(output)
    check_model(args)

    infiller = load_infiller(args)
    config = decode_config(args, infiller)
    with tqdm(total=len(rows), unit="row", desc="infill batch", dynamic_ncols=True) as bar:
        completions = infiller.fill_batch(
            [(row.prompt, row.suffix) for row in rows],
            mode=args.mode,
            max_tokens=args.max_tokens or DEFAULT_MAX_TOKENS,
            config=config,
            progress=bar.update,
            batch_size=args.batch_size,
        )
    lines = [
        json.dumps({"task_id": row.task_id, "completion": completion}, ensure_ascii=False) + "\n"
        for row, completion in zip(rows, completions, strict=True)
    ]
    write_atomic(output, "".join(lines).encode("utf-8"))
    return 0
