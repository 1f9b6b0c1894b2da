"""``mccom complete``: complete one cursor position of a file with one model."""

from __future__ import annotations

import argparse

from mccom_core.cli._defaults import default

DECODE = "mccom_core.lm.decoding:DecodeConfig"
PROMPT = "mccom_core.lm.prompts:PromptConfig"
LOAD = "mccom_core.lm.models:load_model"
CASCADE = "mccom_core.cascade.engine:CascadeConfig"  # the local model and its stage-1 drafter


def register(sub) -> None:
    p = sub.add_parser("complete", help="complete the line at a cursor position of a file")
    p.add_argument("file", help="source file")
    p.add_argument("--line", type=int, required=True, help="1-based line of the cursor")
    p.add_argument("--col", type=int, default=None, help="0-based column (default: after the indentation)")
    p.add_argument("--model", default=default(CASCADE, "slm"),
                   help="registry name, checkpoint folder, .gguf file or hub id (default: %(default)s)")
    p.add_argument("--device", default=default(LOAD, "device"), help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--dtype", default=default(LOAD, "dtype"),
                   help="auto or a torch dtype name, e.g. float32 (default: %(default)s)")
    p.add_argument("--drafter", default=default(CASCADE, "stage1_drafter"),
                   help="drafter registry name: none, context, ... (default: %(default)s)")
    p.add_argument("--stop", default=default(DECODE, "stop"), choices=["line", "statement", "none"],
                   help="stop rule (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=default(DECODE, "max_new_tokens"),
                   help="cap on generated tokens (default: %(default)s)")
    p.add_argument("--max-left-tokens", type=int, default=default(PROMPT, "max_left_tokens"),
                   help="left-context budget in tokens (default: %(default)s)")
    p.add_argument("--format", default=default(PROMPT, "format"), choices=["left", "fim"],
                   help="prompt format: left context only, or fill-in-the-middle (default: %(default)s)")
    p.add_argument("--heal", action=argparse.BooleanOptionalAction, default=default(DECODE, "token_healing"),
                   help="token healing: back off the prompt's last token (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mccom_core.lm.decoding import DecodeConfig, complete
    from mccom_core.lm.drafting import make_drafter
    from mccom_core.lm.models import load_model
    from mccom_core.lm.prompts import PromptConfig, build_prompt, read_source, split_at_cursor

    left, right = split_at_cursor(read_source(args.file), args.line, args.col)
    decode = DecodeConfig(stop=args.stop, max_new_tokens=args.max_new_tokens, token_healing=args.heal)
    drafter = make_drafter(args.drafter)
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    prompt = build_prompt(left, right, lm.tokenizer, PromptConfig(max_left_tokens=args.max_left_tokens, format=args.format))
    out = complete(lm, prompt, decode, drafter=drafter, extra_texts=(right,))
    tok = lm.tokenizer
    print(f"model      {lm.spec} on {lm.device} ({lm.dtype}), loaded in {lm.load_seconds:.1f} s")
    print(f"completion {out.text!r}")
    print(f"confidence {out.confidence:.3f}   stop: {out.stop_reason}   healed: {out.heal_text!r}")
    print("tokens     " + "  ".join(f"{tok.decode([t])!r}:{p:.2f}" for t, p in zip(out.token_ids, out.token_probs)))
    print(f"timing     prompt {out.prompt_tokens} tok, prefill {out.prefill_ms:.0f} ms, decode {out.decode_ms:.0f} ms, "
          f"draft {out.draft_ms:.1f} ms, {len(out.token_ids)} new tok in {out.n_forward} passes "
          f"({out.n_accepted}/{out.n_drafted} drafted accepted)")
    return 0
