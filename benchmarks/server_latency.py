"""One request's latency on a vLLM server against the same model in-process (issue 20, first part).

For each of ``--repeats`` prompts of exactly ``--prompt-tokens`` tokens of real code (each made
unique from its first token, so nothing of it is in the server's prefix cache), one greedy
completion of ``--new-tokens`` tokens (stop rule off, no healing):

* server cold: the first request of that prompt (the server prefills it all);
* server warm: the same request again (its prompt is in the prefix cache);
* in-process: :func:`mccom_core.lm.decoding.complete` on the same prompt in this process.

Times are what the client sees (network and queue included); "first token" is the streamed
time to the first token, the rest is decode. The server's and the in-process outputs are
compared token for token.

    mccom serve qwen2.5-coder-0.5b --port 8000 &   # wait for "ready"
    python benchmarks/server_latency.py --spec openai:http://127.0.0.1:8000/v1#qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from model_speed import code_prompt  # noqa: E402

from mccom_core.lm.decoding import DecodeConfig, complete  # noqa: E402
from mccom_core.lm.models import load_model  # noqa: E402
from mccom_core.lm.remote_decoding import complete_remote  # noqa: E402
from mccom_core.provenance import cpu_name  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="openai:<base URL>#<served registry model>")
    ap.add_argument("--prompt-tokens", type=int, default=1576)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-local", action="store_true", help="skip the in-process model")
    args = ap.parse_args(argv)

    remote = load_model(args.spec)
    local = None if args.no_local else load_model(remote.config.model, device="cpu")
    decode = DecodeConfig(stop="none", token_healing=False, max_new_tokens=args.new_tokens)
    base = code_prompt(remote.tokenizer, args.prompt_tokens - 12)
    rows = {"server cold": [], "server warm": [], "in-process": []}
    same = 0
    for k in range(args.repeats):
        text = f"# request {k} at {time.time_ns()}\n" + base
        cold = complete_remote(remote, text, decode)
        warm = complete_remote(remote, text, decode)
        rows["server cold"].append(cold)
        rows["server warm"].append(warm)
        if local is not None:
            out = complete(local, text, decode)
            rows["in-process"].append(out)
            same += out.token_ids == cold.token_ids == warm.token_ids
    print(f"| {args.spec} | prompt tokens | new tokens | first token ms | rest ms | total ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, outs in rows.items():
        if outs:
            med = lambda f: statistics.median(f(o) for o in outs)  # noqa: E731
            print(f"| {name} | {outs[0].prompt_tokens} | {len(outs[0].token_ids)} | {med(lambda o: o.prefill_ms):.0f} "
                  f"| {med(lambda o: o.decode_ms):.0f} | {med(lambda o: o.prefill_ms + o.decode_ms):.0f} |")
    print(f"\nMedians of {args.repeats} prompts on {cpu_name()}; 1-minute load average at the end "
          f"{os.getloadavg()[0]:.1f}. Outputs identical (server cold, warm, in-process): "
          f"{same if local is not None else '-'} of {args.repeats}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
