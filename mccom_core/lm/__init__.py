"""Completion models: model specs and the GGUF registry (models, registry), prompts from a cursor
(prompts), greedy decoding with draft verification (decoding, healing, kv_cache, stopping), drafters."""

from mccom_core.lm.decoding import Completion, DecodeConfig, complete
from mccom_core.lm.drafting import DRAFTERS, DraftContext, Drafter, make_drafter
from mccom_core.lm.kv_cache import PrefixCache, warm
from mccom_core.lm.models import LoadedModel, load_model, load_tokenizer, tokenizers_identical, warm_up
from mccom_core.lm.prompts import Prompt, PromptConfig, build_prompt, split_at_cursor
from mccom_core.lm.registry import REGISTRY, RegistryEntry, assemble_gguf

__all__ = [
    "Completion", "DRAFTERS", "DecodeConfig", "DraftContext", "Drafter", "LoadedModel", "PrefixCache", "Prompt",
    "PromptConfig", "REGISTRY", "RegistryEntry", "assemble_gguf", "build_prompt", "complete", "load_model",
    "load_tokenizer", "make_drafter", "split_at_cursor", "tokenizers_identical", "warm", "warm_up",
]
