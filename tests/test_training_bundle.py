"""The bundled default model: sharded safetensors with an index, the 100 MB / 15 MB / 1 MB limits, loading a
sharded bundle, and bringing a GPU run's files back through the device tool's return limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from infill.errors import TrainingError
from infill.models import load_model
from training import bundle, transfer
from training.bundle import bundle_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_default.sh"


def _logits(model_dir: Path) -> torch.Tensor:
    loaded = load_model(model_dir, device="cpu")
    ids = torch.tensor([[5, 17, 42, 9, 3, 11]])
    with torch.no_grad():
        return loaded.model.logits(ids, torch.ones_like(ids)).float()


def test_a_sharded_bundle_has_an_index_and_loads_to_the_same_model(
    modernbert_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "default_model"
    written = {p.name for p in bundle_model(modernbert_dir, dest, shard_bytes=55_000)}
    shards = sorted(dest.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and not (dest / "model.safetensors").exists()
    assert {s.name for s in shards} | {
        "model.safetensors.index.json",
        "config.json",
        "tokenizer.json",
    } <= written
    assert all(s.stat().st_size <= 55_000 + 4096 for s in shards)  # tensors + header
    index = json.loads((dest / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    from safetensors.torch import load_file

    stored = {name: t for s in shards for name, t in load_file(str(s)).items()}
    assert set(index["weight_map"]) == set(stored)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in stored.values())
    assert torch.allclose(_logits(dest), _logits(modernbert_dir), atol=1e-5)


def test_bfloat16_bundle_halves_the_weights(modernbert_dir: Path, tmp_path: Path) -> None:
    full, half = tmp_path / "full", tmp_path / "half"
    bundle_model(modernbert_dir, full)
    bundle_model(modernbert_dir, half, bfloat16=True, shard_bytes=30_000)
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.safetensors"))  # noqa: E731
    assert size(half) < 0.55 * size(full)
    assert json.loads((half / "config.json").read_text())["dtype"] == "bfloat16"
    assert torch.allclose(_logits(half), _logits(full), atol=0.1)


def test_limits_refuse_and_leave_the_old_bundle_in_place(
    modernbert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "default_model"
    bundle_model(modernbert_dir, dest)
    before = sorted((p.name, p.stat().st_size) for p in dest.iterdir())
    monkeypatch.setattr(bundle, "MAX_TOTAL_BYTES", 50_000)
    with pytest.raises(TrainingError, match="over the 100 MiB limit"):
        bundle_model(modernbert_dir, dest)
    monkeypatch.undo()
    with pytest.raises(TrainingError, match="cannot be split"):
        bundle_model(modernbert_dir, dest, shard_bytes=1_000)
    monkeypatch.setattr(bundle, "MAX_OTHER_FILE_BYTES", 10_000)  # the tokenizer is larger
    with pytest.raises(TrainingError, match=r"tokenizer.json is .* under 1 MiB"):
        bundle_model(modernbert_dir, dest)
    assert sorted((p.name, p.stat().st_size) for p in dest.iterdir()) == before
    assert not list(tmp_path.glob(".default_model-*"))  # no staging left behind


def test_a_large_corpus_manifest_is_summarised_to_fit(modernbert_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    import shutil

    shutil.copytree(modernbert_dir, run)
    train = [f"pypi/pkg-1.0/module_{i:06d}.py" for i in range(40_000)]
    manifest = {"files": 40_010, "train_files": train, "heldout_files": ["a.py", "b.py"], "train_chars": 9}
    (run / "training_manifest.json").write_text(json.dumps(manifest, indent=2))
    assert (run / "training_manifest.json").stat().st_size > bundle.MAX_OTHER_FILE_BYTES
    bundle_model(run, tmp_path / "b")
    compact = json.loads((tmp_path / "b" / "training_manifest.json").read_text())
    assert "train_files" not in compact and compact["train_files_count"] == 40_000
    import hashlib

    assert compact["train_files_sha256"] == hashlib.sha256("\n".join(train).encode()).hexdigest()
    assert compact["heldout_files"] == ["a.py", "b.py"] and compact["files"] == 40_010


def test_the_gpu_recipe_shape_fits_the_bundle() -> None:
    """The model the GPU recipe trains (its defaults in scripts/train_default.sh) fits 100 MiB in bf16 and
    its largest tensor fits one shard."""
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    text = SCRIPT.read_text()
    shape = {
        k: int(re.search(rf"\b{k}=\$\{{{k}:-(\d+)\}}", text).group(1))
        for k in ("VOCAB", "HIDDEN", "LAYERS", "HEADS", "FFN", "SEQ_LEN")
    }
    config = ModernBertConfig(
        vocab_size=shape["VOCAB"] + 7,
        hidden_size=shape["HIDDEN"],
        intermediate_size=shape["FFN"],
        num_hidden_layers=shape["LAYERS"],
        num_attention_heads=shape["HEADS"],
        max_position_embeddings=shape["SEQ_LEN"],
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=0,
        cls_token_id=0,
        sep_token_id=2,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = ModernBertForMaskedLM(config)
    weights = {n: p.numel() * 2 for n, p in model.state_dict().items() if n != "decoder.weight"}
    assert 40e6 < sum(weights.values()) / 2 < 50e6  # about 50M parameters: the size the issue asks for
    assert sum(weights.values()) + 3 * 2**20 < bundle.MAX_TOTAL_BYTES  # room for tokenizer, card, manifest
    assert max(weights.values()) <= bundle.SHARD_TARGET_BYTES
    assert bundle.MAX_TOTAL_BYTES == 100 * 2**20 and bundle.MAX_SHARD_BYTES == 15 * 2**20


# --- transfer: the files that come back from a GPU machine --------------------------------------------


def _tree(root: Path, sizes: dict[str, int]) -> Path:
    for rel, size in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes((i * 7 + len(rel)) % 251 for i in range(size)))
    return root


def test_transfer_plans_parts_within_the_return_limits_and_restores_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "SMALL_FILE_BYTES", 1_000)
    monkeypatch.setattr(transfer, "MAX_FILE_BYTES", 4_000)
    monkeypatch.setattr(transfer, "MAX_PART_BYTES", 10_000)
    large = {f"model-{i:05d}-of-00007.safetensors": 3_500 for i in range(1, 8)}
    bundle_dir = _tree(tmp_path / "bundle", {**large, "config.json": 300, "README.md": 900})
    report_dir = _tree(tmp_path / "report", {"bench.json": 500, "logs/train.log": 700})
    plan = transfer.plan({"bundle": bundle_dir, "report": report_dir}, tmp_path / "plan")
    assert plan["parts"] == 4  # two 3,500-byte files per 10,000-byte part
    parts = []
    for number in range(1, plan["parts"] + 1):
        out = tmp_path / f"out{number}"
        files = transfer.copy_part(number, tmp_path / "plan", out)
        assert len(files) <= transfer.MAX_FILES_PER_PART
        assert all(f.stat().st_size <= transfer.MAX_FILE_BYTES and f.parent == out for f in files)
        assert sum(f.stat().st_size for f in files if f.name != transfer.PLAN_FILE) <= 10_000
        parts.append(out)
    restored = tmp_path / "restored"
    names = transfer.restore(parts, restored)
    assert len(names) == 11
    for rel in names:
        source = (bundle_dir if rel.startswith("bundle/") else report_dir) / rel.split("/", 1)[1]
        assert (restored / rel).read_bytes() == source.read_bytes()
    with pytest.raises(transfer.TransferError, match="parts missing: 2"):
        transfer.restore([parts[0], parts[2], parts[3]], tmp_path / "again")
    victim = next(parts[2].glob("bundle__model-*"))
    victim.write_bytes(b"x" + victim.read_bytes()[1:])
    with pytest.raises(transfer.TransferError, match="sha256 differs"):
        transfer.restore(parts, tmp_path / "third")


def test_transfer_of_a_full_size_bundle_takes_two_calls(tmp_path: Path) -> None:
    """Seven 14 MiB shards (the recipe's ~90 MiB bundle) and the reports: two parts of at most 8 files and
    64 MiB each (sparse files: nothing is really written)."""
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    for i in range(1, 8):
        with (bundle_dir / f"model-{i:05d}-of-00007.safetensors").open("wb") as fh:
            fh.truncate(bundle.SHARD_TARGET_BYTES)
    (bundle_dir / "tokenizer.json").write_text("{}")
    plan = transfer.plan({"bundle": bundle_dir}, tmp_path / "plan")
    assert plan["parts"] == 2
    for number in (1, 2):
        sizes = [e["bytes"] for e in plan["files"].values() if e["part"] == number]
        assert len(sizes) + 2 <= transfer.MAX_FILES_PER_PART and sum(sizes) <= 64 * 2**20 - 2**20


def test_transfer_refuses_a_file_too_large_to_return(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "SMALL_FILE_BYTES", 10)
    monkeypatch.setattr(transfer, "MAX_FILE_BYTES", 100)
    src = _tree(tmp_path / "src", {"huge.bin": 500})
    assert transfer.main(["plan", "--from", f"x={src}", "--to", str(tmp_path / "p")]) == 2
