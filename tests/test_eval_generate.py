"""Batched greedy generation equals batch size 1, on a tiny random Llava saved and reloaded from disk."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from model_helpers import save_random_llava
from vitune.data.templates import VICUNA_V1_CHAT_TEMPLATE, generation_prompt
from vitune.eval.generate import Generator, GenItem

SENTENCES = [
    "What color is the cube? red",
    "How many circles are there? 3",
    "Is there a dog in the picture? no",
    "Describe the image briefly. A small blue square next to a large green triangle.",
    "Where is the ball? on the left of the table",
] * 20


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_random_llava(tmp_path_factory.mktemp("tiny_llava"), SENTENCES)


def _images(tmp_path):
    paths = []
    for i, (size, colour) in enumerate(
        [((40, 24), (255, 0, 0)), ((20, 50), (0, 90, 200)), ((33, 33), (10, 200, 30))]
    ):
        img = Image.new("RGB", size, colour)
        img.putpixel((1, 1), (255, 255, 255))
        p = tmp_path / f"img{i}.png"
        img.save(p)
        paths.append(p)
    return paths


def test_prompt_matches_saved_chat_template(model_dir):
    gen = Generator.from_dir(model_dir)
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    rendered = gen.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert (
        rendered
        == gen.prompt("What is it?", True)
        == generation_prompt("vicuna_v1", [("user", "What is it?")], True)
    )
    assert gen.processor.chat_template == VICUNA_V1_CHAT_TEMPLATE


def test_batched_equals_batch_one(model_dir, tmp_path):
    torch.use_deterministic_algorithms(True)
    imgs = _images(tmp_path)
    items = [
        GenItem("What color is the cube?", imgs[0]),
        GenItem("How many circles are there in this picture, counting the small ones too?", imgs[1]),
        GenItem("Is there a dog?", imgs[2]),
        GenItem("Describe the image briefly.", imgs[0]),
        GenItem("Where is the ball?", Image.open(imgs[1])),
        GenItem("Say something without an image, please.", None),
        GenItem("Hi", None),
    ]
    one = Generator.from_dir(model_dir, batch_size=1, max_new_tokens=6).generate(items)
    many = Generator.from_dir(model_dir, batch_size=4, max_new_tokens=6).generate(items)
    all_in_one = Generator.from_dir(model_dir, batch_size=16, max_new_tokens=6).generate(items)
    assert len(one) == len(items)
    assert any(one), "a random model should still produce some text"
    assert one == many == all_in_one
    assert len(set(one)) >= 4, f"answers should depend on the input: {one}"


def test_left_padding_restored(model_dir):
    gen = Generator.from_dir(model_dir, batch_size=2, max_new_tokens=2)
    side = gen.tokenizer.padding_side
    gen.generate([GenItem("a", None), GenItem("a longer prompt here", None)])
    assert gen.tokenizer.padding_side == side
    assert gen.generate([]) == []


def test_vqa_eval_end_to_end_with_saved_model(model_dir, tmp_path):
    """The quickstart's VQA evaluation asks through the runner: its answers are the Generator's."""
    import json

    from vitune.data.records import QA, ImageRecord
    from vitune.eval.benchmarks import get_benchmark
    from vitune.eval.vqa_eval import run_vqa_eval

    _images(tmp_path)
    recs = [
        ImageRecord(
            str(100 + i),
            f"img{i}.png",
            1,
            1,
            split="val",
            qas=[
                QA(f"{i + 1}{j}", f"What color {j}?", ["red"] * 10, "other", "what color") for j in range(2)
            ],
        )
        for i in range(3)
    ]
    train = [QA("t", "?", [], "other", "what color", multiple_choice_answer="red")]
    res = run_vqa_eval(
        recs, tmp_path, train, tmp_path / "out", model_dir=model_dir, batch_size=4, max_new_tokens=4
    )
    assert res["model"]["n"] == 6 and res["baseline"]["overall"] == 100.0
    preds = json.loads((tmp_path / "out" / "model" / "vqav2" / "predictions.json").read_text())
    gen = Generator.from_dir(model_dir, batch_size=1, max_new_tokens=4)
    prompt = get_benchmark("vqav2").prompt
    expected = gen.generate(
        [GenItem(prompt(qa.question), tmp_path / r.file_name) for r in recs for qa in r.qas]
    )
    assert [preds[qa.question_id] for r in recs for qa in r.qas] == expected
