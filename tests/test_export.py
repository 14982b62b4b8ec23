"""Exports in the llava-hf layout: file contents, reloading both layouts, `vitune export` conversion.

Tiny real LLaVA models (the `micro` preset, weights redrawn wide so every output depends on every
part) and real files; the cross-version half (transformers 4.57) is in test_export_crossversion.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from model_helpers import save_random_llava
from vitune.cli import app
from vitune.train.export import export_model, load_pretrained, save_pretrained
from vitune.train.export_probe import run_probe
from vitune.train.lora import apply_lora, merge_lora

TEXTS = ["a red circle on the left", "what colour is the big square? blue", "two plus three is five"] * 20
runner = CliRunner(env={"COLUMNS": "300"})  # rich wraps errors at the terminal width


def flat(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


def old_export(tmp_path: Path) -> Path:
    """What vitune wrote before the llava-hf layout: transformers 5.x's own save_pretrained."""
    return save_random_llava(tmp_path / "old", TEXTS)


def weight_names(d: Path) -> list[str]:
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        return list(f.keys())


def assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_export_writes_the_llava_hf_layout(tmp_path):
    model, proc = load_pretrained(old_export(tmp_path))
    out = save_pretrained(model, proc, tmp_path / "new", extra={"note": "x"})
    names = weight_names(out)
    prefixes = (
        "vision_tower.vision_model.",
        "language_model.model.",
        "language_model.lm_head.",
        "multi_modal_projector.",
    )
    assert names and all(n.startswith(prefixes) for n in names), names[:5]
    assert {p for p in prefixes if any(n.startswith(p) for n in names)} == set(prefixes)
    assert len(names) == len(model.state_dict())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["text_config"]["rope_theta"] == cfg["text_config"]["rope_parameters"]["rope_theta"]
    assert cfg["image_token_index"] == model.config.image_token_id and cfg["torch_dtype"] == "float32"
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok["extra_special_tokens"] == {"image_token": "<image>"}
    assert tok["model_input_names"] == ["input_ids", "attention_mask"]
    template = (out / "chat_template.jinja").read_text()
    assert (
        json.loads((out / "chat_template.json").read_text())["chat_template"]
        == template
        == tok["chat_template"]
    )
    pre = json.loads((out / "preprocessor_config.json").read_text())
    assert pre["image_processor_type"] == "LlavaImageProcessor" and pre["do_pad"] is True
    pc = json.loads((out / "processor_config.json").read_text())
    assert "image_processor" not in pc and pc["patch_size"] == 8 and pc["num_additional_image_tokens"] == 1
    info = json.loads((out / "vitune.json").read_text())
    assert info["note"] == "x" and info["export"]["layout"] == "llava-hf"


def test_both_layouts_reload_to_the_same_model_and_outputs(tmp_path):
    old = old_export(tmp_path)
    model, proc = load_pretrained(old)
    new = save_pretrained(model, proc, tmp_path / "new")
    m_old, _ = load_pretrained(old)
    m_new, _ = load_pretrained(new)
    assert_same_model(m_old, m_new)
    (a, ta), (b, tb) = run_probe(str(old)), run_probe(str(new))
    assert [c["input_ids"] for c in a["cases"]] == [c["input_ids"] for c in b["cases"]]
    assert [c["generated"] for c in a["cases"]] == [c["generated"] for c in b["cases"]]
    assert all(torch.equal(ta[k], tb[k]) for k in ta) and ta.keys() == tb.keys()


def test_load_refuses_missing_weights(tmp_path):
    model, proc = load_pretrained(old_export(tmp_path))
    out = save_pretrained(model, proc, tmp_path / "new")
    weights = load_file(out / "model.safetensors")
    dropped = next(k for k in weights if k.startswith("vision_tower.vision_model.encoder.layers.0"))
    del weights[dropped]
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing keys"):
        load_pretrained(out)


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    old = old_export(tmp_path)
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    res = runner.invoke(app, ["export", str(old), "--out", str(precious)])
    assert res.exit_code == 2 and "not a model export" in flat(res.output)
    assert (precious / "notes.txt").read_text() == "keep me" and len(list(precious.iterdir())) == 1
    res = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "not a model folder" in flat(res.output) and not (tmp_path / "x").exists()


def test_cli_rewrites_an_old_export_in_place_and_a_stage_folder(tmp_path):
    old = old_export(tmp_path)
    before, _ = load_pretrained(old)
    (old / "vitune.json").write_text(json.dumps({"stage": {"name": "s1"}}))
    stage = tmp_path / "stage1"
    stage.mkdir()
    res = runner.invoke(app, ["export", str(old), "--out", str(stage / "model")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", str(old), "--out", str(old)])  # in place
    assert res.exit_code == 0, res.output
    assert weight_names(old)[0].startswith(("vision_tower.vision_model.", "language_model.", "multi_modal"))
    info = json.loads((old / "vitune.json").read_text())
    assert info["stage"] == {"name": "s1"} and info["converted_from"]["kind"] == "model"
    from_stage = export_model(stage, tmp_path / "from_stage")  # a stage folder: its model/
    for d in (old, from_stage):
        after, _ = load_pretrained(d)
        assert_same_model(before, after)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_cli_merges_a_lora_adapter_folder(tmp_path):
    base = old_export(tmp_path)
    model, _ = load_pretrained(base)
    peft_model = apply_lora(model, {"r": 4, "alpha": 8, "dropout": 0.0}, parts=["llm", "vision"])
    torch.manual_seed(3)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.2)  # peft initialises B to zero: a no-op adapter would prove nothing
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert Path(cfg["base_model_name_or_path"]).resolve() == base.resolve()
    want = merge_lora(peft_model)
    res = runner.invoke(app, ["export", str(tmp_path / "adapter"), "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    got, _ = load_pretrained(tmp_path / "merged")
    assert_same_model(want, got)
    plain, _ = load_pretrained(base)
    assert not torch.equal(
        plain.model.vision_tower.state_dict()["encoder.layers.0.self_attn.q_proj.weight"],
        got.model.vision_tower.state_dict()["encoder.layers.0.self_attn.q_proj.weight"],
    )
