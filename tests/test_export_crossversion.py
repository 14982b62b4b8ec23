"""Exports load identically under transformers 4.57 (a second environment) and this 5.x, both ways.

The second environment is `.venv-tf4` (made by scripts/setup_tf4.sh, which scripts/test.sh runs) or
$VITUNE_CHECK_PYTHON. Each check runs `export_probe.py` under it as a subprocess: `AutoProcessor` +
`LlavaForConditionalGeneration` from the folder, fixed conversations, and compares the loading
report, input ids, pixel values and logits (1e-5) and 16 greedy tokens with this environment's.
Without the second environment the tests fail under CI=true and are skipped (with the reason) only
on a developer's machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from model_helpers import save_random_llava
from vitune.cli import app
from vitune.train import export
from vitune.train.export import load_pretrained, save_pretrained
from vitune.train.export_check import check_exports, compare, read_probe
from vitune.train.export_probe import NEW_TOKENS, run_probe
from vitune.train.lora import apply_lora, merge_lora
from vitune.train.model import build_model, processor_for
from vitune.train.tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["a red circle on the left", "what colour is the big square? blue", "two plus three is five"] * 20


@pytest.fixture(scope="module")
def tf4() -> str:
    python = os.environ.get("VITUNE_CHECK_PYTHON") or str(REPO / ".venv-tf4" / "bin" / "python")
    if Path(python).exists():
        return python
    reason = f"no transformers 4.57 environment at {python}: run `bash scripts/setup_tf4.sh`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def wide_model(seed: int = 0):
    """A micro LLaVA with every weight redrawn wide (tower included, as after training it), so a
    part loaded wrongly or re-initialised changes the logits and the greedy tokens."""
    tok = train_tokenizer(TEXTS, vocab_size=300)
    model = build_model("micro", tok, seed=seed)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() >= 2:
                w.normal_(0.0, 0.15)
    return model, processor_for(model, tok)


def weight_names(d: Path) -> set[str]:
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        return set(f.keys())


def assert_identical(result) -> None:
    assert result.ok, result.summary()
    assert result.there.startswith("4.57") and result.here.startswith("5.")
    assert result.cases == 3 and result.max_logit_diff <= 1e-5


def qwen2_export(root: Path) -> Path:
    """A composed CLIP + Qwen2 LLaVA: tied embeddings, chatml, a tokenizer without BOS."""
    from test_train_compose_qwen2 import _save_parts
    from vitune.train.compose import compose_llava

    root.mkdir()
    _save_parts(root)
    c = compose_llava(root / "clip", root / "qwen2", chat_template="chatml")
    torch.manual_seed(1)
    with torch.no_grad():
        for w in c.model.parameters():
            if w.dim() >= 2:
                w.normal_(0.0, 0.15)
    return save_pretrained(c.model, c.processor, root / "export")


@pytest.fixture(scope="module")
def checked(tmp_path_factory, tf4):
    """Three folders checked against 4.57 in one interpreter start (each start costs seconds):
    a plain export, a LoRA-merged one whose tower changed too, and an export written the old way."""
    root = tmp_path_factory.mktemp("xver")
    model, proc = wide_model()
    plain = save_pretrained(model, proc, root / "plain")
    lora_model, lora_proc = wide_model(seed=5)
    peft_model = apply_lora(lora_model, {"r": 4, "alpha": 8, "dropout": 0.0}, parts=["llm", "vision"])
    torch.manual_seed(6)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.2)  # zero-initialised by peft: make the merge change the weights
    merged = merge_lora(peft_model)
    lora = save_pretrained(merged, lora_proc, root / "lora")
    old = save_random_llava(root / "old", TEXTS)  # transformers 5.x's own layout
    qwen2 = qwen2_export(root / "qwen2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export, "MAX_SHARD_SIZE", "200KB")  # what a 7B model gets at 5 GB
        sharded = save_pretrained(model, proc, root / "sharded")
    results = check_exports([plain, lora, old, qwen2, sharded], tf4, keep=root / "there")
    return {
        "sharded": (sharded, model, results[4], root / "there" / "4"),
        "qwen2": (qwen2, None, results[3], root / "there" / "3"),
        "plain": (plain, model, results[0], root / "there" / "0"),
        "lora": (lora, merged, results[1], root / "there" / "1"),
        "old": (old, None, results[2], root / "there" / "2"),
    }


def test_plain_export_is_identical_under_4_57(checked):
    out, _, result, _ = checked["plain"]
    assert_identical(result)
    summary, _ = run_probe(str(out))
    assert all(len(c["generated"]) == NEW_TOKENS for c in summary["cases"])
    assert len({tuple(c["generated"]) for c in summary["cases"]}) > 1  # answers depend on the input


def test_lora_merged_export_with_changed_tower_is_identical_under_4_57(checked):
    out, merged, result, _ = checked["lora"]
    assert_identical(result)
    reloaded, _ = load_pretrained(out)
    for k, v in merged.state_dict().items():
        assert torch.equal(v, reloaded.state_dict()[k]), k


def test_composed_qwen2_export_with_tied_embeddings_is_identical_under_4_57(checked):
    out, _, result, _ = checked["qwen2"]
    assert "language_model.lm_head.weight" not in weight_names(out)  # tied: written once
    assert_identical(result)


def test_sharded_export_is_identical_under_4_57(checked):
    out, model, result, _ = checked["sharded"]
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").exists()
    assert_identical(result)
    reloaded, _ = load_pretrained(out)
    for k, v in model.state_dict().items():
        assert torch.equal(v, reloaded.state_dict()[k]), k


def test_old_export_breaks_under_4_57(checked):
    _, _, result, _ = checked["old"]
    assert not result.ok and "TokenizersBackend" in " ".join(result.problems)


def test_vitune_export_converts_and_checks_an_old_export(tmp_path, tf4):
    old = save_random_llava(tmp_path / "old", TEXTS)
    runner = CliRunner(env={"COLUMNS": "300"})
    res = runner.invoke(app, ["export", str(old), "--out", str(tmp_path / "new"), "--check", "--python", tf4])
    assert res.exit_code == 0, res.output
    assert "4.57" in res.output and "identical on 3 cases" in " ".join(res.output.split())


@pytest.mark.parametrize("name", ["plain", "lora"])
def test_checkpoint_saved_by_4_57_loads_identically_here(checked, name):
    out, model, _, there = checked[name]
    resaved = there / "saved"  # the model and processor saved by 4.57's own save_pretrained
    assert weight_names(resaved) == weight_names(out)  # vitune writes 4.57's own key layout
    result = compare(str(resaved), run_probe(str(resaved)), read_probe(there))  # 5.x loading it
    assert result.ok and result.max_logit_diff <= 1e-5, result.summary()
    m, _ = load_pretrained(resaved)
    for k, v in model.state_dict().items():
        assert torch.equal(v, m.state_dict()[k]), k
