"""Edit mode on real tiny models (in-process): the engine's pure loop, its text edge and Infiller's edits.

``edit_model_dir`` is a random ModernBERT whose output bias makes it sure of the tokens of EDIT_CLEAN_LINE
and reject any other token there (putting " b" back): so clean code must come back byte-identical and a
planted token must be fixed, every time. ``x_model_dir`` rejects everything that is not "x", so what it
proposes for a keyword does not parse.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from infill.engine import InfillEngine
from infill.engine.edit import EditConfig, edit_in_place, score_in_place
from infill.engine.edit_text import EditRequest, _pieces, edit_region_text
from infill.errors import Cancelled, InputError
from infill.infiller import Infiller, apply_edits
from tests.conftest import EDIT_CLEAN_LINE

pytestmark = pytest.mark.usefixtures("one_thread")

CLEAN = "def add(a, b):\n" + EDIT_CLEAN_LINE + "\n\nprint(add(1, 2))\n"
PLANTED = CLEAN.replace("a + b", "a + x")


@pytest.fixture(scope="module")
def edit_infiller(edit_model_dir: Path) -> Infiller:
    return Infiller.load(edit_model_dir)


def _line_span(text: str) -> tuple[int, int]:
    start = text.index("    return")
    return start, text.index("\n", start) + 1


def test_clean_code_comes_back_byte_identical(edit_infiller: Infiller) -> None:
    start, end = _line_span(CLEAN)
    outcome = edit_infiller.edit_region(CLEAN, start, end, language="python")
    assert outcome.reason == "confident"
    assert outcome.edit is None
    assert outcome.proposed == CLEAN[start:end]
    # Confidences tile the region, every token likely (the model is sure of each one).
    spans = outcome.confidences
    assert spans and spans[0].start == start and spans[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert min(s.confidence for s in spans) > 0.1


def test_planted_token_is_fixed_and_nothing_else_changes(edit_infiller: Infiller) -> None:
    start, end = _line_span(PLANTED)
    outcome = edit_infiller.edit_region(PLANTED, start, end, language="python")
    assert outcome.reason == "changed" and outcome.edit is not None
    planted = PLANTED.index(" x")
    # The smallest edit: within the planted token's characters, the rest of the file untouched.
    assert planted <= outcome.edit.start < outcome.edit.end <= planted + 2
    assert apply_edits(PLANTED, [outcome.edit]) == CLEAN
    assert "".join(token.text for token in outcome.edit.tokens) == outcome.edit.new_text
    doubted = [s for s in outcome.original_confidences if PLANTED[s.start : s.end] == " x"]
    assert len(doubted) == 1 and doubted[0].confidence < 1e-6
    fixed = [s for s in outcome.confidences if CLEAN[s.start : s.end] == " b"]
    assert len(fixed) == 1 and fixed[0].confidence > 0.1


def test_unparseable_proposal_is_refused_with_its_own_reason(x_model_dir: Path) -> None:
    infiller = Infiller.load(x_model_dir)
    # The x model doubts the keyword and writes "x" in its place: "x add(a, b):" does not parse.
    outcome = infiller.edit_region(CLEAN, 0, 3, language="python")
    assert outcome.reason == "invalid"
    assert outcome.edit is None
    assert outcome.proposed != "def"


def test_edit_function_is_none_outside_any_function(edit_infiller: Infiller) -> None:
    assert edit_infiller.edit_function(CLEAN, CLEAN.index("print"), language="python") is None
    inside = edit_infiller.edit_function(PLANTED, PLANTED.index(" x"), language="python")
    assert inside is not None and inside.reason == "changed"


def test_marked_regions_are_edited_in_place_with_markers_kept(edit_infiller: Infiller) -> None:
    text = "def add(a, b):\n    # infill:begin\n" + EDIT_CLEAN_LINE.replace("b", "x") + "    # infill:end\n"
    (outcome,) = edit_infiller.edit_document(text, language="python")
    assert outcome.edit is not None
    assert apply_edits(text, [outcome.edit]) == text.replace("a + x", "a + b")


def test_held_positions_are_never_reopened(edit_model_dir: Path) -> None:
    engine = InfillEngine.from_pretrained(edit_model_dir)
    tokenizer, special = engine.loaded.tokenizer, engine.loaded.special
    region = tokenizer.encode(PLANTED[slice(*_line_span(PLANTED))])
    planted = region.index(tokenizer.encode(" x")[0])
    config = EditConfig(max_reopen=1.0)
    held = [i != planted for i in range(len(region))]
    free = edit_in_place(engine.loaded.model, [], region, [], special, config, engine.default_config())
    assert free.tokens != region and free.origin[planted] is None
    kept = edit_in_place(
        engine.loaded.model, [], region, [], special, config, engine.default_config(), editable=held
    )
    assert kept.tokens == region and kept.origin == list(range(len(region)))


def test_scoring_groups_agree_with_masking_one_token_at_a_time(edit_model_dir: Path) -> None:
    engine = InfillEngine.from_pretrained(edit_model_dir)
    loaded = engine.loaded
    region = loaded.tokenizer.encode(CLEAN)
    with torch.inference_mode():
        grouped = score_in_place(loaded.model, [], region, [], loaded.special, 3, loaded.device)
        alone = score_in_place(loaded.model, [], region, [], loaded.special, len(region), loaded.device)
    assert grouped.current.shape == (len(region),)
    # Where the rows differ only in which OTHER tokens are masked, the biased model barely notices.
    assert torch.allclose(grouped.best_ids.float(), alone.best_ids.float())


def test_multibyte_characters_stay_whole(edit_model_dir: Path) -> None:
    engine = InfillEngine.from_pretrained(edit_model_dir)
    region = "    s = 'héllo 🙂'\n"
    pieces = _pieces(region, engine.loaded.tokenizer.encode(region), engine.loaded.tokenizer)
    assert pieces is not None and not all(pieces.editable)  # the tiny tokenizer splits é and 🙂 into bytes
    edited = edit_region_text(engine, EditRequest("", region, ""), config=EditConfig(max_reopen=1.0))
    # Whatever the model wrote, the text decodes whole (no U+FFFD) and every kept piece is original.
    assert "\ufffd" not in edited.text
    assert edited.original_confidences and edited.original_confidences[-1].end == len(region)
    assert "".join(region[s.start : s.end] for s in edited.original_confidences) == region


def test_cancel_and_bad_settings(edit_infiller: Infiller) -> None:
    start, end = _line_span(PLANTED)
    with pytest.raises(Cancelled):
        edit_infiller.edit_region(PLANTED, start, end, language="python", should_stop=lambda: True)
    with pytest.raises(InputError, match="doubt_ratio"):
        edit_infiller.edit_region(
            PLANTED, start, end, language="python", edit_config=EditConfig(doubt_ratio=2.0)
        )
    with pytest.raises(InputError, match="outside"):
        edit_infiller.edit_region(PLANTED, 0, len(PLANTED) + 5, language="python")
