"""Multi-round evaluation: dialog prompts carry the model's own earlier answers; single-round is the
plain runner's request; statistics and side-by-side scores are right on fixed predictions."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from model_helpers import save_random_llava
from vitune.data.templates import VICUNA_V1_CHAT_TEMPLATE, generation_prompt, render_segments
from vitune.eval.benchmarks import BenchItem, get_benchmark, to_gen_item
from vitune.eval.generate import Generator
from vitune.eval.judge import make_judge
from vitune.eval.multiround import (
    RESULTS_FILE,
    chain_by_image,
    length_stats,
    multiround_table_rows,
    run_multiround,
    summarize,
)
from vitune.synth.fakeserver import FakeChatServer

SHORT = "\nAnswer the question using a single word or phrase."


def _vqa(qid: str, image: str, q: str, answers: list[str]) -> BenchItem:
    return BenchItem(
        qid, q + SHORT, image, answers=answers, category="other", subcategory="what", meta={"raw_question": q}
    )


def _open(qid: str, image: str, q: str) -> BenchItem:
    return BenchItem(qid, q, image, answers=[f"Reference {qid}."], category="conv", meta={"raw_question": q})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    texts = ["What color is the cube? red", "Describe the image in detail. A small blue square."] * 20
    # The rendered system prompt in the corpus keeps prompts short (BPE learns it as a few tokens).
    texts += ["".join(s.text for s in render_segments("vicuna_v1", [("user", t), ("assistant", "ok")], True))
              for t in texts[:4]]  # fmt: skip
    return save_random_llava(tmp_path_factory.mktemp("tiny_llava_mr"), texts, vocab_size=400)


@pytest.fixture
def images(tmp_path):
    for i, colour in enumerate([(255, 0, 0), (0, 90, 200)]):
        img = Image.new("RGB", (40 + 8 * i, 32), colour)
        img.putpixel((2, 2), (255, 255, 255))
        img.save(tmp_path / f"img{i}.png")
    return tmp_path


def _dialogs():
    return {
        "vqav2": [_vqa("v0", "img0.png", "What color is it?", ["red"] * 9 + ["dark red"]),
                  _vqa("v1", "img1.png", "How many shapes?", ["2"] * 9 + ["3"])],
        "llava_bench": [_open("o0", "img0.png", "Describe the image in detail."),
                        _open("o1", "img0.png", "What could happen next?"),
                        _open("o2", "img0.png", "Why is it red?"),
                        _open("o3", "img1.png", "Describe the picture.")],
    }  # fmt: skip


def test_chain_by_image_puts_open_turns_around_the_short_one(images):
    d = chain_by_image(_dialogs(), image_root=images)
    by_ids = {k: [it.item_id for _, it in turns] for k, turns in d.items()}
    assert by_ids == {
        str(images / "img0.png"): ["o0", "o1", "v0", "o2"],
        str(images / "img1.png"): ["o3", "v1"],
    }
    assert [b for b, _ in d[str(images / "img0.png")]] == [
        "llava_bench",
        "llava_bench",
        "vqav2",
        "llava_bench",
    ]
    assert [len(t) for t in chain_by_image(_dialogs(), max_turns=2).values()] == [2, 2]


def test_dialog_prompts_hold_earlier_turns_and_own_answers(model_dir, images):
    dialogs = chain_by_image(_dialogs(), image_root=images)
    res = run_multiround(
        model_dir, dialogs, image_root=images, max_new_tokens=5, batch_size=3, keep_prompts=True
    )
    gen = Generator.from_dir(model_dir, batch_size=1, max_new_tokens=5)
    assert res["settings"]["n_dialogs"] == 2 and res["settings"]["n_turns"] == 6
    answers = [t["multi"] for r in res["dialogs"] for t in r["turns"]]
    assert sum(bool(a) for a in answers) >= 4, f"a random model should still say something: {answers}"
    for rec in res["dialogs"]:
        turns = rec["turns"]
        image = Image.open(rec["image"])
        for k, turn in enumerate(turns):
            expected_turns = []
            for prev in turns[:k]:
                expected_turns += [("user", prev["question"]), ("assistant", prev["multi"])]
            expected_turns.append(("user", turn["question"]))
            # Turn k's prompt: the earlier questions and the model's OWN answers, in order, in the
            # vicuna_v1 rendering, which is also what the saved chat template produces.
            assert turn["prompt"] == generation_prompt("vicuna_v1", expected_turns, True)
            msgs = [{"role": r, "content": [{"type": "text", "text": t}]} for r, t in expected_turns]
            msgs[0]["content"].insert(0, {"type": "image"})
            assert gen.processor.chat_template == VICUNA_V1_CHAT_TEMPLATE
            rendered = gen.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            assert rendered == turn["prompt"]
            pos = [turn["prompt"].index(prev["question"]) for prev in turns[:k]] + [
                turn["prompt"].rindex(turn["question"])
            ]
            assert pos == sorted(pos)
            assert turn["prompt"].count("<image>") == 1 and turn["prompt"].count("</s>") == k
            # The recorded answer is what the model says to exactly that prompt, alone (batch 1).
            alone = gen.answer([turn["prompt"]], [image])
            assert alone == [turn["multi"]]
    # Multi-round answers differ from single-round ones somewhere: history changes the prompt.
    later = [(t["single"], t["multi"]) for r in res["dialogs"] for t in r["turns"][1:]]
    assert any(s != m for s, m in later)


def test_single_round_equals_the_plain_runner_and_turn_one(model_dir, images, tmp_path):
    dialogs = chain_by_image(_dialogs(), image_root=images)
    res = run_multiround(
        model_dir, dialogs, image_root=images, max_new_tokens=5, batch_size=4, out_dir=tmp_path / "o"
    )
    flat = [(b, it) for turns in dialogs.values() for b, it in turns]
    plain = Generator.from_dir(model_dir, batch_size=1, max_new_tokens=5).generate(
        [to_gen_item(it, images) for _, it in flat]
    )
    got = [t["single"] for r in res["dialogs"] for t in r["turns"]]
    assert got == plain
    assert all(r["turns"][0]["single"] == r["turns"][0]["multi"] for r in res["dialogs"])
    # Single-round scores are the benchmark's own scorer on the plain answers.
    vqa_items = [it for b, it in flat if b == "vqav2"]
    plain_preds = {it.item_id: a for (b, it), a in zip(flat, plain, strict=True) if b == "vqav2"}
    assert res["scores"]["vqav2"]["single"] == get_benchmark("vqav2").score(plain_preds, vqa_items)
    assert "skipped" in res["scores"]["llava_bench"]  # judged, and no judge given: said so
    saved = json.loads((tmp_path / "o" / RESULTS_FILE).read_text())
    assert saved["dialogs"] == res["dialogs"]


def test_length_stats_and_scores_on_fixed_predictions(tmp_path):
    assert length_stats(["red", "a red cube", "it is a red cube", ""], terse_words=3) == {
        "n": 4, "mean_words": (1 + 3 + 5 + 0) / 4, "terse_frac": 0.75,
    }  # fmt: skip
    assert length_stats([]) == {"n": 0, "mean_words": 0.0, "terse_frac": 0.0}
    d = _dialogs()
    dialogs = {"a": [("llava_bench", d["llava_bench"][0]), ("vqav2", d["vqav2"][0]), ("llava_bench", d["llava_bench"][1])],
               "b": [("vqav2", d["vqav2"][1]), ("llava_bench", d["llava_bench"][3])]}  # fmt: skip
    fixed = {  # item: (single, multi)
        "o0": ("The image shows a red cube on a table.", "A red cube on a table."),
        "v0": ("red", "Red."),
        "o1": ("Someone may pick up the cube and move it.", "cube"),
        "v1": ("2", "two shapes"),
        "o3": ("Two blue squares side by side.", "squares"),
    }
    records = [
        {"key": k, "turns": [{"benchmark": b, "item_id": it.item_id, "question": it.question,
                              "single": fixed[it.item_id][0], "multi": fixed[it.item_id][1]} for b, it in turns]}
        for k, turns in dialogs.items()
    ]  # fmt: skip
    replies = {"The image shows": "7 8", "A red cube on": "7 6", "Someone may": "6 6", "cube": "6 2",
               "Two blue": "8 8", "squares": "8 4"}  # fmt: skip

    def reply(body):
        a2 = body["messages"][1]["content"].split("[Assistant 2]\n")[1]
        return next(v for k, v in replies.items() if a2.startswith(k))

    with FakeChatServer(reply_fn=reply) as srv:
        judge = make_judge(srv.url, "j", cache=tmp_path / "c.sqlite", api_key="k", backoff_base=0.01)
        s = summarize(records, dialogs, judge=judge, terse_words=3)
        judge.close()
    # VQAv2 (answers differ, so answers are normalized under either protocol): single "red" and "2" right;
    # multi "Red." -> "red" right, "two shapes" -> "2 shapes" wrong.
    v = s["scores"]["vqav2"]
    assert (v["overall_single"], v["overall_multi"], v["delta"]) == (100.0, 50.0, -50.0)
    # Each row names how it was scored: VQAv2's default protocol is paper (LLaVA's pipeline).
    assert (v["protocol"], v["scorer_version"]) == ("paper", 2)
    assert s["scores"]["llava_bench"]["protocol"] == "official"
    lb = s["scores"]["llava_bench"]
    # single: ref 7+6+8=21, model 8+6+8=22 -> 104.8; multi: model 6+2+4=12 -> 57.1.
    assert (lb["overall_single"], lb["overall_multi"]) == (104.8, 57.1)
    assert lb["multi"]["n_judge_failed"] == 0
    # Per turn index: turn 1 = o0, v1; turn 2 = v0, o3; turn 3 = o1.
    t = {r["turn"]: r for r in s["per_turn"]}
    assert t[1]["single"] == {"n": 2, "mean_words": (9 + 1) / 2, "terse_frac": 0.5}
    assert t[1]["multi"] == {"n": 2, "mean_words": (6 + 2) / 2, "terse_frac": 0.5}
    assert t[2]["multi"] == {"n": 2, "mean_words": 1.0, "terse_frac": 1.0}
    assert t[3]["single"]["mean_words"] == 9 and t[3]["multi"] == {
        "n": 1,
        "mean_words": 1.0,
        "terse_frac": 1.0,
    }
    # Open-ended turns after a short-answer turn: o1 (dialog a) and o3 (dialog b).
    assert s["open_after_short"]["single"] == {"n": 2, "mean_words": (9 + 6) / 2, "terse_frac": 0.0}
    assert s["open_after_short"]["multi"] == {"n": 2, "mean_words": 1.0, "terse_frac": 1.0}
    assert s["per_benchmark_length"]["vqav2"]["multi"]["mean_words"] == 1.5
    rows = multiround_table_rows(s)
    assert rows[0] == ("llava_bench (relative_score)", "3", "104.80", "57.10", "-47.70")
    assert rows[1] == ("vqav2 (vqa_accuracy)", "2", "100.00", "50.00", "-50.00")
    assert ("open after short: % <= 3 words", "2", "0.0", "100.0", "+100.0") in rows
    assert ("turn 3: mean words", "1", "9.0", "1.0", "-8.0") in rows


def test_dialogs_too_long_for_the_model_are_refused(model_dir, images):
    dialogs = chain_by_image(_dialogs(), image_root=images)
    with pytest.raises(ValueError, match="positions"):
        run_multiround(model_dir, dialogs, image_root=images, max_new_tokens=600)
