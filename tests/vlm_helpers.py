"""Tiny random image-text-to-text models of Hugging Face families, saved with a local tokenizer,
image processor, processor and chat template (no download), for the model-backend tests.

Families whose processor has a video part (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, SmolVLM) cannot
be saved whole here: transformers 5.23 cannot construct (nor load) those processors without
torchvision, which this environment lacks (torch is the CPU build and stays as it is): its class
check looks up `VideoProcessorMixin`, which only exists with torchvision. `qwen2_vl` therefore
and `llava_onevision` return the model (saved, so its config is detected) and its processor
assembled in memory from its real parts (the family's image processor, tokenizer, chat template),
which is all that answering uses. The three built here cover the
three ways families place images: expanded image tokens after a CLIP tower with any-resolution
tiles (LLaVA-NeXT), image splitting with pixel-shuffled SigLIP-like tokens (Idefics3 / SmolVLM) and
pooled SigLIP tokens between begin/end-of-image markers with bidirectional image attention (Gemma 3).

Each builder writes what `AutoModelForImageTextToText` / `AutoProcessor` load, in the layout of the
family's real checkpoints (the family's config classes, special tokens and processor), at a size a
CPU runs in a second: 2-layer text models of width 32, 1-2 layer vision towers on 28-64 px images.
Weights are redrawn wide (std 0.2) so every answer depends on its prompt and image (at the default
init a random model answers the same whatever the input, and a batching bug would go unseen).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "What color is the cube? red blue green yellow",
    "How many circles are there? 1 2 3 4 5",
    "Is there a dog in the picture? yes no",
    "Answer the question using a single word or phrase.",
    "Describe the image. A small red square on a white background.",
] * 10

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}IMAGE{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer(specials: list[str], named: dict[str, str], eos: str, pad: str, bos: str | None = None):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=260 + len(specials),
        special_tokens=["<unk>", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    kw = {"bos_token": bos} if bos else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token=eos,
        pad_token=pad,
        extra_special_tokens=named,
        **kw,
    )


def _widen(model: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() >= 2:
                w.normal_(0.0, 0.2)


def _text(vocab: int, **kw) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **kw,
    )


def _vision(**kw) -> dict:
    """A 1-layer vision tower of width 32 on 32 px images (`kw`: patch size, model type, ...)."""
    return dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, **kw
    )


def _chatml(image: str) -> str:
    return CHATML.replace("IMAGE", image)


def _save(d: Path, model, processor, seed: int) -> Path:
    _widen(model, seed)
    model.save_pretrained(d)
    processor.save_pretrained(d)
    return d


def _llama_text(tok, **kw) -> dict:
    return _text(
        len(tok),
        model_type="llama",
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        **kw,
    )


def _idefics3(d: Path, seed: int) -> Path:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    specials = [
        "<|begin_of_text|>",
        "<end_of_utterance>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        "<pad>",
    ]
    tok = _tokenizer(
        specials, {"image_token": "<image>"}, eos="<end_of_utterance>", pad="<pad>", bos="<|begin_of_text|>"
    )
    vision = _vision(patch_size=16)
    config = Idefics3Config(
        vision_config=vision,
        text_config=_llama_text(tok),
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    template = (
        "<|begin_of_text|>{% for m in messages %}{{ m['role'] | capitalize }}:"
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=1, chat_template=template
    )
    return _save(d, model, processor, seed)


def _gemma3(d: Path, seed: int) -> Path:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    specials = [
        "<bos>",
        "<pad>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<image_soft_token>",
    ]
    named = {
        "boi_token": "<start_of_image>",
        "image_token": "<image_soft_token>",
        "eoi_token": "<end_of_image>",
    }
    tok = _tokenizer(specials, named, eos="<end_of_turn>", pad="<pad>", bos="<bos>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    text = _text(
        len(tok),
        head_dim=8,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        eos_token_id=ids["<end_of_turn>"],
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
    )
    vision = _vision(patch_size=8)
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=4,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    image_processor = Gemma3ImageProcessor(size={"height": 32, "width": 32})
    template = (
        "<bos>{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}"
        "{% endif %}{% endfor %}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    processor = Gemma3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=template
    )
    return _save(d, model, processor, seed)


def _llava_next(d: Path, seed: int) -> Path:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    specials = ["<s>", "</s>", "<pad>", "<image>", "<|im_start|>", "<|im_end|>"]
    tok = _tokenizer(specials, {"image_token": "<image>"}, eos="<|im_end|>", pad="<pad>", bos="<s>")
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    vision = _vision(model_type="clip_vision_model", patch_size=16, projection_dim=32)
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=_llama_text(tok),
        image_grid_pinpoints=pinpoints,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=4,
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=16,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_chatml("<image>\n"),
    )
    return _save(d, model, processor, seed)


def qwen2_vl(d: Path, seed: int = 0, v2_5: bool = False) -> tuple[Path, object, object]:
    """A tiny random Qwen2-VL (or Qwen2.5-VL) saved into `d`, the model, and its processor (in memory).

    Width 32 with 4 heads: head_dim 8, so the 3-D rope sections (temporal, height, width) are 1+1+2.
    Images are resized to 56x56 px: 4x4 patches of 14 px, merged 2x2 into 4 image tokens.
    """
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]  # fmt: skip
    named = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
    tok = _tokenizer(specials, named, eos="<|im_end|>", pad="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    rope = {"rope_type": "default", "mrope_section": [1, 1, 2]}
    text = _text(len(tok), rope_parameters=rope, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                 bos_token_id=None)  # fmt: skip
    if v2_5:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        vision = dict(depth=1, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[0])  # fmt: skip
    else:
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model

        vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2)  # fmt: skip
    config = Config(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                    video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                    vision_end_token_id=ids["<|vision_end|>"])  # fmt: skip
    torch.manual_seed(seed)
    model = Model(config).eval()
    _widen(model, seed)
    model.save_pretrained(d)
    size = {"shortest_edge": 56 * 56, "longest_edge": 56 * 56}
    processor = _assemble(
        Qwen2VLProcessor,
        image_processor=Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2),
        tokenizer=tok,
        chat_template=_chatml("<|vision_start|><|image_pad|><|vision_end|>"),
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
    )
    return d, model, processor


def _assemble(cls: type, **attrs: object) -> object:
    """A processor of `cls` with `attrs` set and no video processor, without its `__init__` (whose
    class check needs torchvision); these attributes are all that its `__call__` reads for images."""
    processor = object.__new__(cls)
    for k, v in {"video_processor": None, **attrs}.items():
        setattr(processor, k, v)
    return processor


def llava_onevision(d: Path, seed: int = 0) -> tuple[Path, object, object]:
    """A tiny random LLaVA-OneVision (SigLIP-like tower, Qwen2 text model, any-resolution tiles of 32
    px up to 64x64, 4 tokens per tile) saved into `d`, the model, and its processor (in memory)."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = _tokenizer(specials, {"image_token": "<image>", "video_token": "<video>"}, eos="<|im_end|>",
                     pad="<|endoftext|>")  # fmt: skip
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    text = _text(len(tok), model_type="qwen2", eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                 bos_token_id=None)  # fmt: skip
    vision = _vision(model_type="siglip_vision_model", patch_size=16)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text, image_grid_pinpoints=pinpoints,
                                  image_token_index=ids["<image>"], video_token_index=ids["<video>"],
                                  vision_feature_select_strategy="full", vision_feature_layer=-1)  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    _widen(model, seed)
    model.save_pretrained(d)
    processor = _assemble(
        LlavaOnevisionProcessor,
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tok,
        chat_template=_chatml("<image>\n"),
        num_image_tokens=4,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        image_token="<image>",
        video_token="<video>",
        image_token_id=ids["<image>"],
        video_token_id=ids["<video>"],
    )
    return d, model, processor


BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    "idefics3": _idefics3,
    "gemma3": _gemma3,
    "llava_next": _llava_next,
}


def build(family: str, d: Path, seed: int = 0) -> Path:
    """A tiny random `family` model (a key of `BUILDERS`) saved into `d`."""
    return BUILDERS[family](d, seed)
