"""`vitune train --plan`: parameter counts of real LLaVA shapes from configs, the FLOPs and memory
arithmetic on hand-checked cases, launches read from the accelerate configs, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitune.train.cost import (
    PartShape,
    StepLoad,
    activation_bytes,
    part_flops,
    state_bytes,
    step_flops,
)
from vitune.train.meta import meta_model, model_info
from vitune.train.plan import (
    launch_from_config,
    launch_from_options,
    parse_gpu_mem,
    plan_recipe,
)
from vitune.train.recipe import ModelSpec, RecipeError, parse_recipe

REPO = Path(__file__).resolve().parents[1]

# openai/clip-vit-large-patch14-336 as published: a full CLIP config whose vision half LLaVA uses.
CLIP_L_336 = {
    "model_type": "clip",
    "projection_dim": 768,
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
    },
    "text_config": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
}


def vicuna(hidden: int, inter: int, layers: int, heads: int) -> dict:
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }


def write_config(d: Path, config: dict) -> str:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(d)


@pytest.mark.parametrize(
    ("llm", "billions", "projector"),
    [
        # LLaVA-1.5-7B / 13B: CLIP-L/336 + Vicuna v1.5; projector 1024->h->h with biases.
        (vicuna(4096, 11008, 32, 32), 7.06, 1024 * 4096 + 4096 + 4096 * 4096 + 4096),
        (vicuna(5120, 13824, 40, 40), 13.35, 1024 * 5120 + 5120 + 5120 * 5120 + 5120),
    ],
)
def test_llava_15_parameter_counts_from_configs(tmp_path, llm, billions, projector):
    spec = ModelSpec(
        vision_tower=write_config(tmp_path / "clip", CLIP_L_336), llm=write_config(tmp_path / "llm", llm)
    )
    info = model_info(spec)
    model = meta_model(info.config)
    total = sum(p.numel() for p in model.parameters())
    assert total == pytest.approx(billions * 1e9, rel=0.01)
    assert all(p.is_meta for p in model.parameters())  # nothing allocated
    assert sum(p.numel() for p in model.model.multi_modal_projector.parameters()) == projector
    # 576 patch features of a 336-px image at patch 14, the CLS dropped (LLaVA-1.5's layer -2 default).
    assert info.config.image_seq_length == 576 and info.config.vision_feature_layer == -2


def test_unknown_model_id_is_refused_without_download():
    with pytest.raises(RecipeError, match=r"model.llm: 'nobody/no-such-llm'.*downloads nothing"):
        model_info(ModelSpec(vision_tower="openai/clip-vit-large-patch14-336", llm="nobody/no-such-llm"))


def test_flops_per_token_match_the_hand_formulas():
    s = PartShape(params=100, matmul_params=90, layers=2, hidden=8)
    # attention term L*h*T = 2*8*4 = 64
    assert part_flops(s, "full", False, 4) == (6 * 90 + 12 * 64, 2 * 90 + 4 * 64)
    assert part_flops(s, "frozen", True, 4)[0] == 4 * 90 + 12 * 64  # gradients pass through
    assert part_flops(s, "frozen", False, 4)[0] == 2 * 90 + 4 * 64  # forward only
    assert part_flops(s, "lora", False, 4, lora_params=5)[0] == 4 * 90 + 12 * 64 + 6 * 5


def small_shapes() -> dict[str, PartShape]:
    return {
        "vision": PartShape(
            50, 40, layers=1, hidden=6, intermediate=12, kv_dim=6, largest_layer=30, layer_params=30
        ),
        "projector": PartShape(20, 20),
        "llm": PartShape(
            300,
            280,
            layers=2,
            hidden=8,
            intermediate=16,
            kv_dim=8,
            largest_layer=100,
            layer_params=200,
            vocab=10,
        ),
    }


def test_activation_memory_hand_checked():
    shapes = small_shapes()
    modes = {"vision": "frozen", "projector": "full", "llm": "full"}
    micro = StepLoad(tokens=4, images=1, mean_length=4, vision_tokens=5, image_features=4)
    # llm: (7h + 2kv + 4I) = 136 values x 2 layers x 4 tokens x 2 bytes = 2176; projector: 2 bytes x
    # 4 features x (6 + 2*8) = 176; logits: 4 tokens x 10 x (2 + 8) = 400; the frozen tower: nothing.
    assert activation_bytes(shapes, modes, micro, half=True) == 2176 + 176 + 400
    # checkpointed llm: each layer keeps its input (h = 8) plus one layer recomputed: 2 x 4 x (2*8 + 136)
    ckpt = activation_bytes(shapes, modes, micro, half=True, checkpointing={"llm": True})
    assert ckpt == 1216 + 176 + 400
    frozen = {"vision": "frozen", "projector": "full", "llm": "frozen"}
    # a frozen layer gradients pass through: 4h + 2kv + 3I = 96 values
    assert activation_bytes(shapes, frozen, micro, half=False) == 4 * 4 * 2 * 96 + 4 * 4 * 22 + 4 * 10 * 12
    flops = step_flops(shapes, modes, micro, checkpointing={"llm": True})
    assert flops["llm"] == 4 * (6 * 280 + 12 * 2 * 8 * 4) and flops["vision"] == 5 * (2 * 40 + 4 * 1 * 6 * 5)
    assert flops["recompute"] == 4 * (2 * 280 + 4 * 2 * 8 * 4)


def test_state_memory_per_strategy_hand_checked():
    n, t = 1_000_000_000, 250_000_000
    assert state_bytes(n, t, "single", 1, half=True) == {"weights": 4e9, "gradients": 1e9, "optimizer": 2e9}
    assert state_bytes(n, t, "ddp", 8, half=True) == {"weights": 4e9, "gradients": 2e9, "optimizer": 2e9}
    assert state_bytes(n, t, "fsdp", 8, half=True) == {
        "weights": 5e8,
        "gradients": 1.25e8,
        "optimizer": 2.5e8,
    }
    assert state_bytes(n, t, "zero2", 8, half=True) == {
        "weights": 2e9,
        "gradients": 6.25e7,
        "optimizer": 3.75e8,
    }
    assert state_bytes(n, t, "zero3", 8, half=True) == {
        "weights": 2.5e8,
        "gradients": 6.25e7,
        "optimizer": 3.75e8,
    }
    off = state_bytes(n, t, "zero3", 8, half=True, offload_optimizer=True, offload_params=True)
    assert off["weights"] == off["optimizer"] == 0


def test_launches_from_the_bundled_accelerate_configs():
    cfg = REPO / "configs" / "accelerate"
    fsdp = launch_from_config(cfg / "fsdp-1node-8gpu.yaml")
    assert (fsdp.strategy, fsdp.processes, fsdp.mixed_precision) == ("fsdp", 8, "bf16")
    assert launch_from_config(cfg / "deepspeed-zero3-1node-8gpu.yaml").strategy == "zero3"
    assert launch_from_config(cfg / "deepspeed-zero2-1node-8gpu.yaml").strategy == "zero2"
    cpu = launch_from_config(cfg / "cpu-2proc.yaml")
    assert (cpu.strategy, cpu.processes, cpu.mixed_precision) == ("ddp", 2, "no")
    assert launch_from_config(cfg / "ddp-1node-8gpu.yaml").strategy == "ddp"
    assert launch_from_config(cfg / "fsdp-multinode.yaml").processes == 16
    assert launch_from_options(4, "zero2").processes == 4 and launch_from_options().strategy == "single"
    assert parse_gpu_mem("80GB") == parse_gpu_mem("80 GiB") == 80 * 2**30
    with pytest.raises(RecipeError, match="--gpu-mem"):
        parse_gpu_mem("lots")


def seven_b_recipe(tmp_path: Path, n: int = 50) -> dict:
    """LLaVA-1.5-7B's finetune stage over `n` LLaVA JSON samples (configs only, no weights)."""
    images = tmp_path / "images"
    images.mkdir()
    data = [
        {
            "id": str(i),
            "image": f"{i}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is in the picture?"},
                {"from": "gpt", "value": "A red circle. " * (1 + i % 5)},
            ],
        }
        for i in range(n)
    ]
    (tmp_path / "d.json").write_text(json.dumps(data), encoding="utf-8")
    return {
        "name": "llava-7b-finetune",
        "model": {
            "vision_tower": write_config(tmp_path / "clip", CLIP_L_336),
            "llm": write_config(tmp_path / "llm", vicuna(4096, 11008, 32, 32)),
        },
        "stages": [
            {
                "name": "finetune",
                "data": [{"path": str(tmp_path / "d.json"), "image_root": str(images)}],
                "train": {"vision": "frozen", "projector": "full", "llm": "full"},
                "global_batch": 16,
                "per_device_batch": 2,
                "max_length": 2048,
                "gradient_checkpointing": True,
            }
        ],
    }


def test_plan_of_a_7b_finetune_fits_under_fsdp_not_on_one_gpu(tmp_path):
    recipe = parse_recipe(seven_b_recipe(tmp_path))
    mem = parse_gpu_mem("80GB")
    fsdp = plan_recipe(recipe, launch_from_options(8, "fsdp"), gpu_mem=mem).stages[0]
    single = plan_recipe(recipe, launch_from_options(1), gpu_mem=mem).stages[0]
    # 50 samples at 2 per device: 25 micro-batches; 8 per optimizer step -> ceil(25 / 8) = 4 steps.
    assert (fsdp.micro_per_epoch, fsdp.steps, fsdp.grad_accum, single.grad_accum) == (25, 4, 1, 8)
    assert fsdp.params["trainable"] == fsdp.params["llm"]["trainable"] + fsdp.params["projector"]["trainable"]
    assert fsdp.params["vision"]["trainable"] == 0 and fsdp.params["llm"]["mode"] == "full"
    # One GPU keeps 16 bytes per trainable parameter: 6.7B x 16 B is far beyond 80 GB.
    assert single.memory["optimizer"] == 8 * single.params["trainable"] and single.fits is False
    assert fsdp.memory["weights"] == pytest.approx(4 * fsdp.params["total"] / 8) and fsdp.fits is True
    assert fsdp.data.samples == 50 and fsdp.data.method == "characters" and fsdp.data.missing_images == 50
    assert fsdp.flops["model"] > 6 * fsdp.params["llm"]["trainable"] * fsdp.tokens_per_step * 0.9


def test_plan_encodes_with_the_llm_tokenizer_when_there_is_one(tmp_path):
    from vitune.data.llava import read_llava_json
    from vitune.train.labels import LabelEncoder
    from vitune.train.tokenizer import train_tokenizer

    spec = seven_b_recipe(tmp_path, n=20)
    texts = ["What is in the picture? A red circle. USER: ASSISTANT:"] * 50
    train_tokenizer(texts, vocab_size=300).save_pretrained(spec["model"]["llm"])
    stage = plan_recipe(parse_recipe(spec), gpu_mem=None).stages[0]
    tok = model_info(ModelSpec(**spec["model"])).tokenizer
    enc = LabelEncoder(tok, 576, "vicuna_v1", 2048)
    lengths = [len(enc.encode(i).input_ids) for i in read_llava_json(tmp_path / "d.json")]
    assert stage.data.method == "tokenizer" and stage.data.exact
    assert sorted(stage.data.lengths) == sorted(lengths)


def test_set_overrides_are_validated_like_the_file(tmp_path):
    from vitune.train.recipe import apply_sets

    spec = seven_b_recipe(tmp_path)
    out = apply_sets(
        spec, ["stages.finetune.lr=3e-5", "stages.finetune.train.llm=lora", "model.projector=linear"]
    )
    recipe = parse_recipe(out)
    st = recipe.stages[0]
    assert (st.lr, st.train.llm, recipe.model.projector, st.lora.r) == (3e-5, "lora", "linear", 16)
    assert spec["stages"][0]["train"]["llm"] == "full"  # the input mapping is untouched
    for bad, msg in [
        ("stages.nope.lr=1", "no stage 'nope'; stages: \\['finetune'\\]"),
        ("stages.finetune.colour=1", "unknown field 'colour'"),
        ("stages.finetune.lr.x=1", "'lr' has no sub-fields"),
        ("lr=1", "expected stages.NAME.FIELD"),
        ("stages.finetune.lr", "expected stages.NAME.FIELD=VALUE"),
    ]:
        with pytest.raises(RecipeError, match=msg):
            apply_sets(spec, [bad])
    with pytest.raises(RecipeError, match=r"stages\.0\.lr"):
        parse_recipe(apply_sets(spec, ["stages.finetune.lr=-1"]))


def test_cli_plan_and_overrides_on_the_tiny_recipe(tiny_world, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from recipe_helpers import tiny_recipe
    from vitune.cli import app

    world, data = tiny_world
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(world, data)), encoding="utf-8")
    runner = CliRunner()

    res = runner.invoke(app, ["train", str(path), "--plan", "--gpu-mem", "1GB"])
    assert res.exit_code == 0, res.output
    out = res.stdout  # the plan is data: stdout
    for line in ("stage vision (dense_vision)", "stage align (instruct)", "stage stage1 (instruct)"):
        assert line in out
    assert "steps       6 (max_steps 6" in out and "verdict: every stage fits" in out
    assert "characters per token" in out  # a preset's tokenizer does not exist yet: said to be an estimate

    res = runner.invoke(app, ["train", str(path), "--plan", "--set", "stages.stage1.max_steps=3"])
    assert res.exit_code == 0 and "steps       3 (max_steps 3" in res.stdout
    res = runner.invoke(app, ["train", str(path), "--plan", "--max-steps", "2", "--strategy", "ddp"])
    assert res.exit_code == 0 and res.stdout.count("(max_steps 2;") == 3
    assert "ddp on 1 process(es)" in res.stdout

    bad = runner.invoke(app, ["train", str(path), "--plan", "--set", "stages.stage1.lr=-1"])
    assert bad.exit_code == 2 and "stages.2.lr" in bad.output and "--set stages.stage1.lr=-1" in bad.output
    assert "Traceback" not in bad.output
    odd = runner.invoke(app, ["train", str(path), "--plan", "--processes", "3"])
    assert odd.exit_code == 2 and "not divisible by per_device_batch 2 x 3 processes" in odd.output


def test_cli_train_refuses_missing_data_before_loading_anything(tmp_path):
    from typer.testing import CliRunner

    from vitune.cli import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nmodel: {vision_tower: nowhere/v, llm: nowhere/l}\n"
        "stages: [{name: s, data: [{path: missing.json, image_root: imgs}]}]\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(app, ["train", str(recipe), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert f"{tmp_path / 'missing.json'}: stage s: data not found" in said
    assert f"{tmp_path / 'imgs'}: stage s: image folder not found" in said and "Traceback" not in said
    assert not (tmp_path / "run").exists()  # nothing was built


def test_a_frozen_llm_under_a_trained_projector_is_checkpointed():
    """The align stage's frozen LLM keeps activations (gradients pass through it to the projector),
    so gradient checkpointing recomputes it, and the projector's gradients stay the same."""
    import torch

    from vitune.train.model import build_model
    from vitune.train.tokenizer import image_token_id, train_tokenizer
    from vitune.train.trainable import checkpointed_parts, enable_gradient_checkpointing, set_trainable_parts

    modes = {"vision": "frozen", "projector": "full", "llm": "frozen"}
    assert checkpointed_parts(modes) == {"vision": False, "llm": True}
    assert checkpointed_parts({"vision": "frozen", "projector": "frozen", "llm": "lora"})["vision"] is False
    tok = train_tokenizer(["a red circle and a blue square on the left"] * 20, vocab_size=300)
    model, _ = set_trainable_parts(build_model("micro", tok, seed=0), modes)
    model.train()
    ids = torch.tensor([[tok.bos_token_id] + [image_token_id(tok)] * 16 + tok.encode("a red circle")])
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mlp = model.model.language_model.layers[0].mlp
    calls, forward = [], mlp.forward
    mlp.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)

    def grads() -> tuple[int, dict]:
        calls.clear()
        model(input_ids=ids, pixel_values=pixels).logits.float().square().mean().backward()
        out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return len(calls), out

    n0, g0 = grads()
    enable_gradient_checkpointing(model, **checkpointed_parts(modes))
    n1, g1 = grads()
    assert (n0, n1) == (1, 2)  # the frozen layer was recomputed in the backward pass
    assert g0.keys() == g1.keys() and all("multi_modal_projector" in n for n in g0)
    for n, g in g0.items():
        torch.testing.assert_close(g1[n], g, rtol=1e-5, atol=1e-7, msg=n)


def test_plan_of_a_started_run_uses_its_base_model_and_tokenizer(tiny_world, tmp_path):
    """With `--out` of a run whose base model exists, the plan counts that model's parameters
    exactly and encodes with its tokenizer (exact tokens and rejections)."""
    from recipe_helpers import tiny_recipe
    from vitune.train.export import load_pretrained
    from vitune.train.stages import build_base

    world, data = tiny_world
    recipe = parse_recipe(tiny_recipe(world, data))
    base = build_base(recipe, tmp_path / "run")
    plan = plan_recipe(recipe, run_dir=tmp_path / "run")
    model, _ = load_pretrained(base)
    assert plan.params["total"] == sum(p.numel() for p in model.parameters())
    assert "this run's base model" in plan.model_source
    stage1 = plan.stages[-1]
    assert stage1.data.method == "tokenizer" and stage1.data.exact
    assert stage1.params["vision"]["trainable"] == sum(
        p.numel() for p in model.model.vision_tower.parameters()
    )
