"""A Qwen2 LLM (no BOS, chatml) composed with a CLIP tower from parts on disk, trained, exported, reloaded.

The parts are tiny real transformers models written with `save_pretrained` (no download): a Qwen2
LLM whose tokenizer is Qwen2.5-base-like (no BOS, eos `<|endoftext|>`, chatml special tokens), so
generation only stops after a reply if the exported generation config knows `<|im_end|>`.
"""

from __future__ import annotations

import torch
from PIL import Image
from transformers import (
    AutoProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlavaForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from model_helpers import train_steps
from tokenizer_helpers import qwen2_tokenizer, rendered
from vitune.data.instance import Instance, Turn
from vitune.data.templates import CHATML_CHAT_TEMPLATE, generation_prompt
from vitune.train.compose import compose_llava
from vitune.train.export import save_pretrained
from vitune.train.labels import IGNORE_INDEX, ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.trainable import set_trainable_parts

QUESTION = "What color is it?"
COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220)}


def _save_parts(root):
    corpus = rendered("chatml", [[("user", QUESTION), ("assistant", c)] for c in COLORS], "<|im_end|>") * 4
    tok = qwen2_tokenizer(corpus, eos="<|endoftext|>", vocab_size=320)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        # As Qwen2.5 base: the config names <|endoftext|> for both, the tokenizer has no BOS.
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(root / "qwen2")
    tok.save_pretrained(root / "qwen2")
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    CLIPVisionModel(vision).save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip"
    )
    (root / "imgs").mkdir()
    for name, rgb in COLORS.items():
        Image.new("RGB", (40, 32), rgb).save(root / "imgs" / f"{name}.png")
    return len(tok)


def _inputs(processor, color, prompt=None):
    prompt = prompt or generation_prompt("chatml", [("user", QUESTION)], True)
    return processor(text=prompt, images=Image.new("RGB", (40, 32), COLORS[color]), return_tensors="pt")


def test_qwen2_compose_train_export_reload_generate(tmp_path):
    vocab = _save_parts(tmp_path)
    c = compose_llava(tmp_path / "clip", tmp_path / "qwen2", chat_template="chatml")
    tok = c.tokenizer
    im_end, eot = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert tok.bos_token is None and tok.pad_token == "<|endoftext|>"
    assert c.info["added_tokens"] == ["<image>"] and c.image_token_id == vocab
    assert c.info["prompt_tokenization_consistent"] is True
    # Replies are trained to end with <|im_end|>: generation must stop there, not only at <|endoftext|>.
    assert c.info["stop_token_added"] == im_end and c.model.generation_config.eos_token_id == [eot, im_end]

    insts = [
        Instance(name, f"{name}.png", "vqa", [Turn("user", QUESTION), Turn("assistant", name)])
        for name in COLORS
    ]
    enc = LabelEncoder(tok, c.image_seq_length, "chatml", max_length=128)
    ds, rejected, _ = build_dataset(insts, enc, ImageCache(tmp_path / "imgs", c.processor.image_processor))
    assert rejected == []
    batch = collate([ds[0], ds[1]], pad_id=tok.pad_token_id)
    # What inference feeds the model is exactly the training ids up to the reply.
    prompt_ids = _inputs(c.processor, "red")["input_ids"][0].tolist()
    assert batch["input_ids"][0, : len(prompt_ids)].tolist() == prompt_ids
    assert batch["labels"][0, len(prompt_ids) - 1] == IGNORE_INDEX
    assert batch["labels"][0, len(prompt_ids)] == tok.convert_tokens_to_ids("red")

    model, _ = set_trainable_parts(c.model, {"vision": "frozen", "projector": "full", "llm": "full"})
    loss = train_steps(model, batch, 20)
    assert loss < 0.2  # the check that matters is what greedy generation says below

    gen = {"max_new_tokens": 8, "do_sample": False}
    want = {name: model.generate(**_inputs(c.processor, name), **gen) for name in COLORS}
    out = save_pretrained(model, c.processor, tmp_path / "export")
    plain = LlavaForConditionalGeneration.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    assert proc.chat_template == CHATML_CHAT_TEMPLATE and proc.tokenizer.bos_token is None
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = proc.apply_chat_template(msgs, add_generation_prompt=True)
    assert prompt == generation_prompt("chatml", [("user", QUESTION)], True)
    for name in COLORS:
        inputs = _inputs(proc, name, prompt)
        got = plain.generate(**inputs, **gen)
        assert got.tolist() == want[name].tolist()
        new = got[0, inputs["input_ids"].shape[1] :].tolist()
        # The reply, then <|im_end|>, and generation stopped there.
        assert new == [tok.convert_tokens_to_ids(name), im_end]
        assert proc.decode(new, skip_special_tokens=True) == name

    # vitune's own evaluation recognizes the checkpoint's template (no --template to get wrong):
    # the runner and the Generator prompt in chatml and answer what plain transformers answers.
    from vitune.data.templates import saved_template
    from vitune.eval.generate import Generator

    assert saved_template(out) == "chatml" and saved_template(tmp_path / "qwen2") == "vicuna_v1"
    g = Generator.from_dir(out, max_new_tokens=8)
    assert g.template == "chatml"
    assert g.prompt(QUESTION, True) == prompt


def test_recipe_stage_exports_the_chat_template_it_trained_with(tmp_path):
    """A recipe from Qwen2 parts: `plain` alignment keeps the base's template, a `chatml` stage
    exports chatml (and stops generation at <|im_end|>), so evaluation prompts as training did."""
    from vitune.data.llava import write_llava_json
    from vitune.data.templates import VICUNA_V1_CHAT_TEMPLATE, saved_template
    from vitune.train.recipe import parse_recipe
    from vitune.train.stages import run_recipe

    _save_parts(tmp_path)
    insts = [
        Instance(name, f"{name}.png", "vqa", [Turn("user", QUESTION), Turn("assistant", name)])
        for name in COLORS
    ]
    write_llava_json(insts, tmp_path / "data.json")
    data = [{"path": str(tmp_path / "data.json"), "image_root": str(tmp_path / "imgs")}]
    common = {
        "data": data,
        "lr": 1e-3,
        "max_steps": 2,
        "global_batch": 2,
        "per_device_batch": 2,
        "max_length": 128,
    }
    recipe = parse_recipe(
        {
            "name": "qwen2-chatml",
            "model": {"vision_tower": str(tmp_path / "clip"), "llm": str(tmp_path / "qwen2")},
            "stages": [
                {"name": "align", "template": "plain", "train": {"llm": "frozen"}, **common},
                {"name": "finetune", "template": "chatml", **common},
            ],
        }
    )
    run_recipe(recipe, tmp_path / "run")
    align = AutoProcessor.from_pretrained(tmp_path / "run" / "stages" / "align" / "model")
    assert align.chat_template == VICUNA_V1_CHAT_TEMPLATE
    out = tmp_path / "run" / "model"
    assert AutoProcessor.from_pretrained(out).chat_template == CHATML_CHAT_TEMPLATE
    assert saved_template(out) == "chatml"
    im_end = AutoProcessor.from_pretrained(out).tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = LlavaForConditionalGeneration.from_pretrained(out).generation_config.eos_token_id
    assert im_end in (eos if isinstance(eos, list) else [eos])
