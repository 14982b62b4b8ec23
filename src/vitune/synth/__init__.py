"""Annotation-grounded synthesis of instruction data (SVIT's four data types + COCO-style dialogs).

`synth(records, generators, backend, out_dir)` builds prompts from each `ImageRecord`'s annotations
(`context`, `prompts`), gets replies from an OpenAI-compatible server or the offline template writer
(`backends`), caches every reply in sqlite (`cache`), parses them (`parse`; an unparsable reply is
re-asked), filters them (`filters`, with the object and colour checks of `grounding`) and exports
LLaVA training JSON plus raw per-type JSON (`export`).
"""

from vitune.synth.backends import (
    Backend,
    BackendError,
    ChatResult,
    OpenAIBackend,
    TemplateBackend,
    make_backend,
)
from vitune.synth.cache import ResponseCache, request_key
from vitune.synth.context import ContextConfig, approx_tokens, build_context
from vitune.synth.export import SynthItem, export_items, item_instances, pad_square_box
from vitune.synth.filters import FilterConfig, ReplyFilter, summarize_kept
from vitune.synth.parse import Parsed, ParseError, QAPair, parse_reply
from vitune.synth.prompts import (
    BUILTIN,
    SVIT_TYPES,
    GeneratorSpec,
    build_messages,
    generator_names,
    get_generator,
    load_generator_file,
    register_generator,
)
from vitune.synth.run import Prices, ProgressInfo, progress_printer, synth

__all__ = [
    "BUILTIN",
    "SVIT_TYPES",
    "Backend",
    "BackendError",
    "ChatResult",
    "ContextConfig",
    "FilterConfig",
    "GeneratorSpec",
    "OpenAIBackend",
    "ParseError",
    "Parsed",
    "Prices",
    "ProgressInfo",
    "QAPair",
    "ReplyFilter",
    "ResponseCache",
    "SynthItem",
    "TemplateBackend",
    "approx_tokens",
    "build_context",
    "build_messages",
    "export_items",
    "generator_names",
    "get_generator",
    "item_instances",
    "load_generator_file",
    "make_backend",
    "pad_square_box",
    "parse_reply",
    "progress_printer",
    "register_generator",
    "request_key",
    "summarize_kept",
    "synth",
]
