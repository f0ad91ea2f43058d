"""The model that ships in infill/default_model/, loaded as a user gets it (no --model, no INFILL_MODEL):
it completes, its generation_config.json is what decoding starts from, and each setting a user can give
(steps, threshold: `--steps`/`--threshold`, the editors' `steps`/`threshold`) changes how it decodes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from infill import regions
from infill.engine.types import FillRequest
from infill.infiller import CompletionRequest, Infiller, apply_edits
from infill.models.locate import BUNDLED_MODEL_DIR, MODEL_ENV_VAR
from infill_cli.main import main

# Inside a comment any one line is valid code, so the modest bundled model reliably has candidates here.
TEXT = "import os\n\n\ndef main():\n    # read the config file and \n    return os.getcwd()\n"
CURSOR = TEXT.index("file and ") + len("file and ")


@pytest.fixture(scope="module")
def bundled() -> Infiller:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(MODEL_ENV_VAR, raising=False)
        infiller = Infiller.load(None, device="cpu")
    assert infiller.engine.loaded.name == str(BUNDLED_MODEL_DIR) or Path(
        infiller.engine.loaded.name
    ).name == (BUNDLED_MODEL_DIR.name)
    return infiller


def test_the_bundled_model_starts_from_its_generation_config(bundled: Infiller) -> None:
    stored = json.loads((BUNDLED_MODEL_DIR / "generation_config.json").read_text())["infill"]
    assert stored, "the bundled model ships decoding defaults"
    config = bundled.engine.default_config()
    assert {key: getattr(config, key) for key in stored} == stored


def test_the_bundled_model_completes(
    bundled: Infiller, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edits = bundled.complete(CompletionRequest(TEXT, CURSOR, "python", num_candidates=3))
    assert edits
    for edit in edits:
        assert edit.start == CURSOR and "\n" not in edit.new_text
        assert regions.document_parses(apply_edits(TEXT, [edit]), "python")
    # The same through the command line, which finds the bundled model by itself.
    (tmp_path / "main.py").write_text(TEXT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    assert main(["complete", f"main.py:5:{CURSOR - TEXT.index('    # read') + 1}", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == edits[0].new_text.strip()


def test_every_user_setting_changes_how_the_bundled_model_decodes(bundled: Infiller) -> None:
    """A setting the model's own defaults make inert (a threshold its strategy ignores) fails here."""
    at = TEXT.index("    return")
    request = FillRequest(TEXT[:at], TEXT[at:], max_tokens=32)
    config = bundled.engine.default_config()

    def passes(**setting: object) -> int:
        return bundled.engine.fill([request], replace(config, **setting))[0].forward_passes

    assert passes(steps=2) < passes(steps=64)
    assert passes(threshold=0.01) < passes(threshold=1.0)


def test_trained_models_decode_with_the_bundled_settings() -> None:
    """A model the trainer writes (a fine-tune of the default, say) gets the bundled model's decoding
    settings, so it is as fast: a setting tuned for the bundle and not carried to the exporter fails here."""
    from training.export import DIFFUSION_DECODE_DEFAULTS

    shipped = json.loads((BUNDLED_MODEL_DIR / "generation_config.json").read_text())["infill"]
    assert shipped == DIFFUSION_DECODE_DEFAULTS
