"""``mccom serve``: the cloud model behind vLLM's OpenAI-compatible server, in its own environment."""

from __future__ import annotations

import argparse

from mccom_core.cli._defaults import default

SERVE = "mccom_core.lm.serve:ServeConfig"


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve a model with vLLM's OpenAI-compatible server (its own environment, built once)",
        description="Builds vLLM's CPU engine into a virtual environment of its own under the user cache (once: "
                    "about 0.95 GB of wheels, 3.5 min), converts the model into the model cache if needed, and runs "
                    "python -m vllm.entrypoints.openai.api_server on it until interrupted. Use the printed "
                    "openai:... spec wherever a model spec is accepted.")
    p.add_argument("model", nargs="?", default=default(SERVE, "model"),
                   help="registry name or checkpoint folder; served under this name (default: %(default)s)")
    p.add_argument("--host", default=default(SERVE, "host"), help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=default(SERVE, "port"), help="port (default: %(default)s)")
    p.add_argument("--dtype", default=default(SERVE, "dtype"),
                   help="weights and activations; float32 matches the in-process outputs (default: %(default)s)")
    p.add_argument("--max-model-len", type=int, default=default(SERVE, "max_model_len"),
                   help="longest prompt plus completion, in tokens (default: %(default)s)")
    p.add_argument("--kv-cache-gb", type=int, default=default(SERVE, "kv_cache_gb"),
                   help="KV cache memory on a CPU in GiB, as VLLM_CPU_KVCACHE_SPACE (default: %(default)s)")
    p.add_argument("--prefix-caching", action=argparse.BooleanOptionalAction,
                   default=default(SERVE, "prefix_caching"),
                   help="reuse the KV cache of shared prompt prefixes (default: %(default)s)")
    p.add_argument("--eager", action=argparse.BooleanOptionalAction, default=default(SERVE, "enforce_eager"),
                   help="skip compilation: a faster first start, slower tokens (default: %(default)s)")
    p.add_argument("--package", default=default(SERVE, "package"),
                   help="the engine wheel installed into its environment (default: %(default)s)")
    p.add_argument("--env-dir", default=default(SERVE, "env_dir"),
                   help="the engine's environment (default: the user cache's vllm-env)")
    p.add_argument("--ngram-tokens", type=int, default=default(SERVE, "ngram_tokens"),
                   help="vLLM's server-side n-gram speculation: draft this many tokens from n-gram matches in "
                        "the prompt (lossless for greedy in principle; 0: off) (default: %(default)s)")
    p.add_argument("--setup-only", action="store_true",
                   help="only build the engine's environment and print its Python; do not start a server")
    p.set_defaults(func=run)


def run(args) -> int:
    import signal

    from mccom_core.lm.serve import ServeConfig, engine_env, start_server, stop_server, wait_ready

    config = ServeConfig(model=args.model, host=args.host, port=args.port, dtype=args.dtype,
                         max_model_len=args.max_model_len, kv_cache_gb=args.kv_cache_gb,
                         prefix_caching=args.prefix_caching, enforce_eager=args.eager, package=args.package,
                         env_dir=args.env_dir, ngram_tokens=args.ngram_tokens)
    if args.setup_only:
        print(f"engine environment ready: {engine_env(config)}")
        return 0
    # SIGTERM ends the server as Ctrl-C does (a test fixture or a supervisor stops it so).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    proc = start_server(config)
    try:
        print(f"mccom serve: starting {config.model}; it will answer as {config.spec}", flush=True)
        seconds = wait_ready(config, proc)
        print(f"mccom serve: ready after {seconds:.0f} s: {config.spec}", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(proc)
