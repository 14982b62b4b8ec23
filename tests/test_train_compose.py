"""Composing LLaVA from pretrained parts (tiny CLIP / SigLIP towers and Llama LLMs saved to disk).

The parts are real transformers models with tiny configs, written with `save_pretrained` first, so
composition loads them exactly as it would load Hugging Face checkpoints (no download).
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from model_helpers import train_steps
from vitune.data.instance import Instance, Turn
from vitune.data.templates import VICUNA_V1_CHAT_TEMPLATE, generation_prompt
from vitune.train.compose import (
    check_image_tokens,
    compose_llava,
    from_llava_checkpoint,
    from_pretrained_parts,
    load_llava,
)
from vitune.train.export import load_pretrained, save_pretrained
from vitune.train.labels import ImageCache, LabelEncoder, build_dataset, collate
from vitune.train.lora import LoraSettings, merge_lora
from vitune.train.trainable import set_trainable_parts

CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions. USER: What color is it? "
    "ASSISTANT: red blue green"
] * 8


def _hf_tokenizer(with_unk: bool) -> PreTrainedTokenizerFast:
    """A Llama-like tokenizer as an LLM ships it: bos/eos(/unk), no pad, no `<image>`."""
    specials = (["<unk>"] if with_unk else []) + ["<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>" if with_unk else None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    kw = {"unk_token": "<unk>"} if with_unk else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", **kw)


def _save_llm(path, with_unk: bool, tied: bool, seed: int) -> int:
    tok = _hf_tokenizer(with_unk)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=tied,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return len(tok)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    vocab = _save_llm(root / "llm", with_unk=True, tied=False, seed=0)
    _save_llm(root / "llm_tied", with_unk=False, tied=True, seed=1)
    # A full CLIP checkpoint (vision + text towers), as openai/clip-vit-large-patch14-336 is.
    vision = {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
    }
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    torch.manual_seed(2)
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)).save_pretrained(
        root / "clip"
    )
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip"
    )
    imgs = root / "imgs"
    imgs.mkdir()
    for i, rgb in enumerate([(220, 30, 30), (30, 60, 220)]):
        Image.new("RGB", (48, 32), rgb).save(imgs / f"{i}.png")
    return {"root": root, "vocab": vocab, "imgs": imgs}


def _prompt_inputs(processor, size=(48, 32)):
    prompt = generation_prompt("vicuna_v1", [("user", "What color is it?")], True)
    return processor(text=prompt, images=Image.new("RGB", size, (200, 20, 20)), return_tensors="pt")


def test_pretrained_weights_are_kept_exactly(parts):
    root, vocab = parts["root"], parts["vocab"]
    c = compose_llava(root / "clip", root / "llm")
    model = c.model

    ref_vision = CLIPVisionModel.from_pretrained(root / "clip")
    ours = model.model.vision_tower.state_dict()
    assert ours.keys() == ref_vision.state_dict().keys()
    assert all(torch.equal(ours[k], v) for k, v in ref_vision.state_dict().items())

    ref_llm = LlamaForCausalLM.from_pretrained(root / "llm")
    ids = torch.randint(3, vocab, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref_llm(input_ids=ids).logits
        got = model(input_ids=ids).logits
    # One row was appended for <image>: the original vocabulary's logits are untouched.
    assert got.shape[-1] == vocab + 1
    torch.testing.assert_close(got[..., :vocab], want, rtol=0, atol=1e-6)
    emb = model.get_input_embeddings().weight
    assert torch.equal(emb[:vocab], ref_llm.get_input_embeddings().weight)
    torch.testing.assert_close(emb[vocab], ref_llm.get_input_embeddings().weight.mean(0))

    # LLaVA-1.5 features: CLIP layer -2, CLS dropped, through the projector.
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden = ref_vision(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        want_feats = model.model.multi_modal_projector(hidden)
        got_feats = model.model.get_image_features(pixel_values=pixels).pooler_output[0]
    torch.testing.assert_close(got_feats, want_feats[0], rtol=0, atol=1e-6)


def test_tokenizer_processor_and_token_counts(parts):
    root, vocab = parts["root"], parts["vocab"]
    c = compose_llava(root / "clip", root / "llm")
    tok, model = c.tokenizer, c.model
    assert c.info["added_tokens"] == ["<image>"]
    assert tok.encode("<image>", add_special_tokens=False) == [vocab] == [c.image_token_id]
    assert tok.pad_token == tok.unk_token == "<unk>"  # LLaVA's choice for Llama tokenizers
    assert tok.chat_template == c.processor.chat_template == VICUNA_V1_CHAT_TEMPLATE
    assert (
        model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"
    )
    assert c.image_seq_length == 16 == model.config.image_seq_length
    inputs = _prompt_inputs(c.processor)
    assert int((inputs["input_ids"] == c.image_token_id).sum()) == 16
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    with torch.no_grad():
        out = model(**inputs)
    assert out.image_hidden_states.shape == (16, 64)
    # Non-square images are padded with the mean colour like LLaVA-1.5, not cropped.
    assert c.processor.image_processor.do_pad
    assert c.info["prompt_tokenization_consistent"] is True
    enc = LabelEncoder(tok, c.image_seq_length, "vicuna_v1", max_length=256)
    e = enc.encode(
        Instance("a", "0.png", "vqa", [Turn("user", "What color is it?"), Turn("assistant", "red")])
    )
    assert e.input_ids.count(c.image_token_id) == 16 and e.labels[-1] == tok.eos_token_id

    # The same seed gives the same projector; another seed another one.
    again = compose_llava(root / "clip", root / "llm").model.model.multi_modal_projector
    other = compose_llava(root / "clip", root / "llm", seed=1).model.model.multi_modal_projector
    assert torch.equal(again.linear_1.weight, model.model.multi_modal_projector.linear_1.weight)
    assert not torch.equal(other.linear_1.weight, model.model.multi_modal_projector.linear_1.weight)


def test_linear_projector_full_strategy_and_new_image_size(parts):
    root = parts["root"]
    model, proc = from_pretrained_parts(
        root / "clip",
        root / "llm",
        projector="linear",
        feature_layer=-1,
        select_strategy="full",
        image_size=48,
    )
    proj = model.model.multi_modal_projector
    assert model.config.projector_hidden_act == "linear"
    assert torch.equal(proj.linear_2.weight, torch.eye(64)) and not proj.linear_2.bias.any()
    # (48 / 8)^2 patches + CLS, all kept.
    assert model.config.image_seq_length == 37 == check_image_tokens(model, proc)
    ref = CLIPVisionModel.from_pretrained(root / "clip")
    old = ref.embeddings.position_embedding.weight
    new = model.model.vision_tower.embeddings.position_embedding.weight
    assert new.shape == (37, 32) and torch.equal(new[0], old[0])  # the CLS position is kept
    inputs = _prompt_inputs(proc)
    assert inputs["pixel_values"].shape == (1, 3, 48, 48)
    with torch.no_grad():
        feats = model(**inputs).image_hidden_states
    assert feats.shape == (37, 64)
    # The linear projector trains as one linear layer: linear_2 stays the identity.
    _, report = set_trainable_parts(model, {"vision": "frozen", "projector": "full", "llm": "frozen"})
    assert not proj.linear_2.weight.requires_grad and proj.linear_1.weight.requires_grad
    assert report["projector"]["trainable"] == proj.linear_1.weight.numel() + proj.linear_1.bias.numel()


def test_no_unk_adds_pad_and_tied_embeddings_survive_export(parts, tmp_path):
    root = parts["root"]
    c = compose_llava(root / "clip", root / "llm_tied")
    assert c.info["added_tokens"] == ["<image>", "<pad>"] and c.info["embedding_rows_added"] == 2
    assert c.tokenizer.pad_token == "<pad>"
    assert c.model.lm_head.weight is c.model.get_input_embeddings().weight
    out = save_pretrained(c.model, c.processor, tmp_path / "tied")
    back = LlavaForConditionalGeneration.from_pretrained(out)
    assert back.lm_head.weight is back.get_input_embeddings().weight
    assert AutoProcessor.from_pretrained(out).tokenizer.pad_token == "<pad>"
    ids = torch.tensor([[1, 5, 9, 20]])
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, c.model(input_ids=ids).logits)


def test_siglip_tower_needs_full_strategy(parts, tmp_path):
    cfg = SiglipVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    SiglipVisionModel(cfg).save_pretrained(tmp_path / "siglip")
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "siglip")
    llm = parts["root"] / "llm"
    with pytest.raises(ValueError, match="no CLS"):
        compose_llava(tmp_path / "siglip", llm)
    c = compose_llava(tmp_path / "siglip", llm, vision_feature_select_strategy="full")
    assert c.image_seq_length == 16 and c.processor.num_additional_image_tokens == 0
    ip = c.processor.image_processor
    assert not ip.do_center_crop and tuple(ip.image_mean) == (0.5, 0.5, 0.5)
    with torch.no_grad():
        assert c.model(**_prompt_inputs(c.processor)).image_hidden_states.shape == (16, 64)


def test_incomplete_vision_checkpoint_is_refused(parts, tmp_path):
    vision = CLIPVisionModel(
        CLIPVisionConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
        )
    )
    sd = {k: v for k, v in vision.state_dict().items() if "post_layernorm" not in k}
    vision.save_pretrained(tmp_path / "partial", state_dict=sd)
    with pytest.raises(ValueError, match="lacks weights"):
        compose_llava(tmp_path / "partial", parts["root"] / "llm")


def test_compose_lora_train_merge_export_reload(parts, tmp_path):
    root, imgs = parts["root"], parts["imgs"]
    c = compose_llava(root / "clip", root / "llm")
    insts = [
        Instance(f"i{i}", f"{i}.png", "vqa", [Turn("user", "What color is it?"), Turn("assistant", name)])
        for i, name in enumerate(["red", "blue"])
    ]
    enc = LabelEncoder(c.tokenizer, c.image_seq_length, "vicuna_v1", max_length=256)
    ds, rejected, _ = build_dataset(insts, enc, ImageCache(imgs, c.processor.image_processor))
    assert rejected == []
    batch = partial(collate, pad_id=c.tokenizer.pad_token_id)([ds[0], ds[1]])
    modes = {"vision": "frozen", "projector": "full", "llm": "lora"}
    model, report = set_trainable_parts(c.model, modes, LoraSettings(r=4, alpha=8, dropout=0.0))
    assert report["llm"]["trainable"] == report["llm"]["lora"] > 0 and report["vision"]["trainable"] == 0
    with pytest.raises(ValueError, match="merge_lora"):
        save_pretrained(model, c.processor, tmp_path / "unmerged")

    train_steps(model, batch, 3)
    inputs = _prompt_inputs(c.processor)
    gen = {"max_new_tokens": 5, "do_sample": False}
    want = model.generate(**inputs, **gen)

    merged = merge_lora(model)
    out = save_pretrained(merged, c.processor, tmp_path / "export", extra={"model": "composed"})
    assert not (out / "adapter_config.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    info = json.loads((out / "vitune.json").read_text())
    assert info["model"] == "composed" and info["export"]["layout"] == "llava-hf"
    plain = LlavaForConditionalGeneration.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is it?"}]}]
    assert proc.apply_chat_template(msgs, add_generation_prompt=True) == generation_prompt(
        "vicuna_v1", [("user", "What color is it?")], True
    )
    assert plain.generate(**_prompt_inputs(proc), **gen).tolist() == want.tolist()

    m2, p2 = load_pretrained(out)
    assert m2.generate(**_prompt_inputs(p2), **gen).tolist() == want.tolist()
    m3, p3 = from_llava_checkpoint(out)
    assert m3.config.image_seq_length == 16 and p3.tokenizer.pad_token == "<unk>"
    again = load_llava(out)
    assert again.info["added_tokens"] == [] and again.info["embedding_rows_added"] == 0


def test_llava_checkpoint_without_padding_gets_a_padding_processor(parts, tmp_path):
    root = parts["root"]
    c = compose_llava(root / "clip", root / "llm")
    # As llava-hf ships it: a plain CLIP image processor, which crops instead of padding.
    c.processor.image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    out = save_pretrained(c.model, c.processor, tmp_path / "hf_style")
    assert not getattr(AutoProcessor.from_pretrained(out).image_processor, "do_pad", False)
    kept = load_llava(out, pad_to_square=False)
    assert not getattr(kept.processor.image_processor, "do_pad", False)
    padded = load_llava(out)
    ip = padded.processor.image_processor
    assert (
        ip.do_pad
        and ip.do_center_crop
        and tuple(ip.image_mean) == tuple(kept.processor.image_processor.image_mean)
    )
    wide = Image.new("RGB", (64, 32), (255, 0, 0))
    # Padding keeps the whole (red) image, with mean-colour bars above and below.
    px = padded.processor.image_processor(images=wide, return_tensors="pt")["pixel_values"][0]
    assert px[0, 0, 16] < 0 < px[0, 16, 16]
