"""Completion models: model specs and the GGUF registry (models, registry), prompts from a cursor
(prompts), greedy decoding with draft verification (decoding, healing, kv_cache, stopping), drafters,
a model behind an OpenAI-compatible server (remote, remote_decoding) and the vLLM engine (serve)."""

from mccom_core.lm.decoding import Completion, DecodeConfig, complete
from mccom_core.lm.drafting import DRAFTERS, DraftContext, Drafter, make_drafter
from mccom_core.lm.kv_cache import PrefixCache, warm
from mccom_core.lm.models import LoadedModel, load_model, load_tokenizer, tokenizers_identical, warm_up
from mccom_core.lm.prompts import Prompt, PromptConfig, build_prompt, split_at_cursor
from mccom_core.lm.registry import REGISTRY, RegistryEntry, assemble_gguf
from mccom_core.lm.remote import RemoteConfig, RemoteModel, load_remote, parse_spec  # registers "openai:"
from mccom_core.lm.remote_decoding import complete_remote
from mccom_core.lm.serve import ServeConfig, engine_env, start_server, stop_server, wait_ready

__all__ = [
    "Completion", "DRAFTERS", "DecodeConfig", "DraftContext", "Drafter", "LoadedModel", "PrefixCache", "Prompt",
    "PromptConfig", "REGISTRY", "RegistryEntry", "RemoteConfig", "RemoteModel", "ServeConfig", "assemble_gguf",
    "build_prompt", "complete", "complete_remote", "engine_env", "load_model", "load_remote", "load_tokenizer",
    "make_drafter", "parse_spec", "split_at_cursor", "start_server", "stop_server", "tokenizers_identical",
    "wait_ready", "warm", "warm_up",
]
