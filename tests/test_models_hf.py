"""Hugging Face VLM families through `vitune.models`: detected from config.json, answered with their
own processor and chat template, batched answers equal to batch 1, and evaluated by the runner.

The models are tiny random ones built from configs (`vlm_helpers`: local tokenizer, image processor
and processor, no download) for three families saved whole: LLaVA-NeXT, Idefics3 (SmolVLM's
architecture) and Gemma 3; Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision with their processor assembled in memory (this
environment has no torchvision, without which transformers cannot build their processor class).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vitune.cli import app
from vitune.models import GenItem, detect_family, local_source
from vitune.models.hf import HFGenerator
from vitune.models.llava import Generator
from vlm_helpers import build, llava_onevision, qwen2_vl


def flat(output: str) -> str:
    """CLI output as one line: rich wraps error panels at the terminal width, with box borders."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


FAMILIES = ["llava_next", "idefics3", "gemma3"]
QUESTIONS = [
    "What color is the cube?",
    "How many circles are there?",
    "Is there a dog in the picture? Answer the question using a single word or phrase.",
    "Describe the image.",
    "What color is the cube? Answer the question using a single word or phrase.",
]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("imgs")
    paths = []
    # Different sizes and aspect ratios: any-resolution tiling and image splitting give each a
    # different number of tiles, so a batch mixes shapes.
    for k, (size, colour) in enumerate(
        [
            ((40, 30), (200, 10, 10)),
            ((64, 64), (10, 10, 200)),
            ((30, 70), (10, 180, 20)),
            ((50, 50), (240, 240, 240)),
        ]
    ):
        img = Image.new("RGB", size, colour)
        img.paste((k * 60, 255 - k * 60, 90), (5, 5, 20, 20))
        paths.append(d / f"{k}.png")
        img.save(paths[-1])
    return paths


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, build(request.param, tmp_path_factory.mktemp(request.param))


def _items(images: list[Path]) -> list[GenItem]:
    items = [GenItem(q, images[i % len(images)]) for i, q in enumerate(QUESTIONS)]
    return [*items, GenItem("How many circles are there?", None), GenItem(QUESTIONS[0], images[2])]


def test_family_detected_from_config(family_dir):
    name, d = family_dir
    assert detect_family(d).name == name
    source = local_source(d, max_new_tokens=6)
    assert source.params()["family"] == name and source.identity()


def test_batched_answers_equal_batch_one(family_dir, images):
    _, d = family_dir
    gen = local_source(d, max_new_tokens=6, batch_size=3).open()
    assert isinstance(gen, HFGenerator)
    items = _items(images)
    batched = gen(items)
    gen.batch_size = 1
    alone = gen(items)
    assert batched == alone
    # Random wide weights: answers depend on prompt and image (a padding bug could not hide).
    assert len(set(batched)) >= 3, batched
    assert all(isinstance(a, str) for a in batched)


IN_MEMORY = {
    "qwen2_vl": lambda d: qwen2_vl(d),
    "qwen2_5_vl": lambda d: qwen2_vl(d, v2_5=True),
    "llava_onevision": llava_onevision,
}


@pytest.mark.parametrize("name", list(IN_MEMORY))
def test_video_capable_families_batched_answers_equal_batch_one(name, images, tmp_path):
    """Qwen2-VL's 3-D rope positions come from the attention mask and the image grids, OneVision's
    token count from each image's tiles: left padding and images of different sizes (different
    token counts) in one batch must not change an answer."""
    d, model, processor = IN_MEMORY[name](tmp_path / name)
    family = detect_family(d)
    assert family.name == name and family.kind == "hf"
    gen = HFGenerator(model, processor, family, max_new_tokens=6, batch_size=3)
    items = _items(images)
    batched = gen(items)
    gen.batch_size = 1
    assert batched == gen(items)
    assert len(set(batched)) >= 3, batched


def test_prompt_is_the_processors_chat_template(family_dir):
    _, d = family_dir
    gen = local_source(d).open()
    prompt = gen.prompt("What color is the cube?", True)
    expected = gen.processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "What color is the cube?"}],
            }
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert prompt == expected and "What color is the cube?" in prompt


def test_llava_family_keeps_the_vitune_generator(tmp_path):
    from model_helpers import save_random_llava

    d = save_random_llava(tmp_path / "m", ["What color is the cube? red"] * 20)
    source = local_source(d)
    assert detect_family(d).kind == "llava"
    assert "template_text" in source.params()  # the cache keys of earlier runs stay valid
    assert isinstance(source.open(), Generator)


def test_unknown_family_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert' is not a registered model family"):
        detect_family(tmp_path)
    r = CliRunner().invoke(
        app, ["eval", "--model", str(tmp_path), "--bench", "pope=x", "--out", str(tmp_path / "o")]
    )
    assert (
        r.exit_code == 2 and "not a registered model family" in flat(r.output) and "Traceback" not in r.output
    )


def test_eval_cli_runs_a_hf_family(tmp_path, images):
    """`vitune eval --model` on a Gemma 3 checkpoint: a class-folder benchmark answered and cached."""
    d = build("gemma3", tmp_path / "gemma3")
    folder = tmp_path / "classes"
    for k, img in enumerate(images[:3]):
        (folder / f"class{k}").mkdir(parents=True)
        Image.open(img).save(folder / f"class{k}" / "a.png")
    args = [
        "eval",
        "--model",
        str(d),
        "--bench",
        f"imagefolder={folder}",
        "--out",
        str(tmp_path / "ev"),
        "--max-new-tokens",
        "4",
        "--batch-size",
        "2",
    ]
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    b = res["benchmarks"]["imagefolder"]
    assert b["n_generated"] == 3 and res["params"]["family"] == "gemma3"
    preds = json.loads((tmp_path / "ev" / "imagefolder" / "predictions.json").read_text())
    assert len(preds) == 3
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})  # everything cached now
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["benchmarks"]["imagefolder"]["n_cached"] == 3
    # bfloat16 weights: another cache key (everything answered again), answers still produced.
    r = CliRunner().invoke(app, [*args, "--dtype", "bfloat16"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["params"]["dtype"] == "bfloat16" and res["benchmarks"]["imagefolder"]["n_generated"] == 3
    r = CliRunner().invoke(app, [*args, "--dtype", "int8"])
    assert r.exit_code == 2 and "--dtype must be one of" in flat(r.output)
    # Multi-round evaluation renders dialogs with vitune's templates: refused, with the reason.
    r = CliRunner().invoke(app, ["eval", "multiround", "--model", str(d), "--bench", f"vqav2={folder}",
                                 "--out", str(tmp_path / "mr")])  # fmt: skip
    assert r.exit_code == 2 and "vitune/LLaVA checkpoints only" in flat(r.output)
