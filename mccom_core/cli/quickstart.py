"""``mccom quickstart``: complete a few lines of a real file with the default model pair."""

from __future__ import annotations

from mccom_core.cli._defaults import default

QUICKSTART = "mccom_core.lab.quickstart:QuickstartConfig"


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="complete a few real lines with both default models and time them")
    p.add_argument("--file", default=None, help="source file (default: the installed rank_bm25.py)")
    p.add_argument("--lines", type=int, nargs="*", default=None, help="1-based lines (default: seeded pick)")
    p.add_argument("--n-lines", type=int, default=default(QUICKSTART, "n_lines"),
                   help="lines to pick when --lines is not given (default: %(default)s)")
    p.add_argument("--seed", type=int, default=default(QUICKSTART, "seed"),
                   help="seed of the line pick (default: %(default)s)")
    p.add_argument("--models", nargs="+", default=default(QUICKSTART, "models"),
                   help="model specs, local first (default: %(default)s)")
    p.add_argument("--device", default=default(QUICKSTART, "device"), help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--drafter", default=default(QUICKSTART, "drafter"),
                   help="drafter registry name (default: %(default)s)")
    p.add_argument("--out", default=None, help="also write the table here (.csv or .json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mccom_core.lab.quickstart import QuickstartConfig, default_file, run_quickstart

    cfg = QuickstartConfig(models=tuple(args.models), n_lines=args.n_lines, seed=args.seed, device=args.device,
                           drafter=args.drafter)
    df = run_quickstart(args.file, cfg, args.lines)
    print(f"file: {args.file or default_file()}")
    for row in df.itertuples():
        mark = "EM" if row.exact_match else "  "
        print(f"[{row.model:>20}] line {row.line:>4} {mark} conf {row.confidence:.2f} "
              f"prefill {row.prefill_ms:6.0f} ms decode {row.decode_ms:5.0f} ms ({row.new_tokens} tok, {row.forward_passes} passes)")
        print(f"{'':24}truth: {row.ground_truth}")
        print(f"{'':24}model: {row.completion}")
    summary = df.groupby("model", sort=False).agg(
        exact_match=("exact_match", "mean"), edit_similarity=("edit_similarity", "mean"),
        prefill_ms=("prefill_ms", "median"), decode_ms=("decode_ms", "median"), load_s=("load_s", "first"))
    print()
    print(summary.to_string(float_format=lambda x: f"{x:.2f}"))
    if args.out:
        (df.to_json(args.out, orient="records", indent=1) if args.out.endswith(".json") else df.to_csv(args.out, index=False))
    return 0
