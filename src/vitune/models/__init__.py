"""Model backends behind one interface, shared by `vitune eval` and `vitune serve` (neither imports `train`
for them).

A `ModelSource` says what answers benchmark items: `identity()` and `params()` go into the eval cache
key and are cheap (no model is loaded to compute them); `open()` loads the model (or connects) and
returns the answer function, `items -> answers` in input order. Three kinds:

- vitune / LLaVA checkpoints (`models.llava.Generator`: batched greedy identical to batch 1, static
  KV cache, the checkpoint's own template);
- any transformers image-text-to-text model with its own processor and chat template, whose family
  (Qwen2-VL, Qwen2.5-VL, LLaVA-NeXT, LLaVA-OneVision, Idefics3, SmolVLM, Gemma 3, ...) is detected
  from `config.json` through the registry in `models.families` (`models.hf.HFGenerator`);
- any OpenAI-compatible chat server (vLLM, SGLang, `vitune serve`, hosted APIs): `models.api`.

    from vitune.models import local_source, api_source
    source = local_source("Qwen/Qwen2.5-VL-7B-Instruct-local-copy", max_new_tokens=32)
    answers = source.open()([GenItem("What colour is the cube?", "img.png")])
"""

from vitune.models.base import GenItem, ModelSource
from vitune.models.families import Family, detect_family, family_names, register_family
from vitune.models.sources import api_source, local_source

__all__ = [
    "Family",
    "GenItem",
    "ModelSource",
    "api_source",
    "detect_family",
    "family_names",
    "local_source",
    "register_family",
]
