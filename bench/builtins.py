"""Build both built-in models with their real budgets and print build times and acceptance figures.

Usage (from the repo root; 8-10 minutes of build plus about 3 minutes of report on 2 cores):

    .venv/bin/python bench/builtins.py [--out /tmp/lookfirst-builtins] [--items 500] [--seed 90210]
    .venv/bin/python bench/builtins.py --out DIR --report-only   # re-measure finished builds

Builds go to OUT/shapes-vlm and OUT/shapes-clip (an existing finished build is reused, so delete OUT
for a fresh build). Acceptance: Easy, Medium and Hard each >= 15% of the answered items (8 samples
per item at temperature 1.2, top_p 0.99, top_k 0), CLIP ROC AUC >= 0.9, total build < 600 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers.models.builtin import REPORT_SEED, build_info, build_shapes_clip, build_shapes_vlm, report  # noqa: E402


def _progress(fraction: float, message: str) -> None:
    print(f"\r[{'#' * int(fraction * 30):<30}] {fraction:4.0%} {message:<60}", end="", file=sys.stderr, flush=True)
    if fraction >= 1.0:
        print(file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lookfirst-builtins"))
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=REPORT_SEED)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    vlm, clip = args.out / "shapes-vlm", args.out / "shapes-clip"
    if not args.report_only:
        build_shapes_vlm(vlm, progress=_progress)
        build_shapes_clip(clip, progress=_progress)
    vlm_info, clip_info = build_info(vlm), build_info(clip)
    t0 = time.monotonic()
    figures = report(vlm, clip, items=args.items, seed=args.seed)
    report_seconds = time.monotonic() - t0

    total = vlm_info["build_seconds"] + clip_info["build_seconds"]
    rows = [
        ("shapes-vlm build", f"{vlm_info['build_seconds']:.0f} s ({vlm_info['steps']} steps, "
                             f"{vlm_info.get('threads', '?')} threads, loss {vlm_info['final_loss']})", ""),
        ("shapes-clip build", f"{clip_info['build_seconds']:.0f} s ({clip_info['steps']} steps, "
                              f"{clip_info.get('threads', '?')} threads, loss {clip_info['final_loss']})", ""),
        ("total build", f"{total:.0f} s", "< 600 s" + (" ok" if total < 600 else " FAIL")),
        ("answered items", f"{figures['vlm_items']}", ""),
    ]
    for bucket in ("easy", "medium", "hard"):
        share = figures[bucket]
        rows.append((f"{bucket.capitalize()} share", f"{share:.1%}", ">= 15%" + (" ok" if share >= 0.15 else " FAIL")))
    rows += [
        ("sample accuracy", f"{figures['accuracy']:.1%}", ""),
        ("format rate (4 headers)", f"{figures['format_rate']:.1%}", ""),
        ("items with both layouts", f"{figures['format_mixed']:.1%}", "(format reward varies in the group)"),
        ("answer header present", f"{figures['answer_rate']:.1%}", ""),
        ("sampling time", f"{figures['sample_seconds']:.0f} s", ""),
        ("CLIP ROC AUC", f"{figures['clip_auc']:.4f}", ">= 0.9" + (" ok" if figures["clip_auc"] >= 0.9 else " FAIL")),
        ("CLIP cosine matched", f"{figures['clip_cos_matched']:.3f}", ""),
        ("CLIP cosine mismatched", f"{figures['clip_cos_mismatched']:.3f}", ""),
        ("CLIP AUC, hard negatives", f"{figures['clip_hard_auc']:.4f}", "(one colour or kind changed)"),
        ("CLIP cosine hard negative", f"{figures['clip_cos_hard']:.3f}", ""),
        ("report time", f"{report_seconds:.0f} s", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<42} {target}")
    print("\nbuckets per question type (easy / medium / hard):")
    for qtype, counts in figures["per_qtype"].items():
        print(f"  {qtype:<14} {counts.get('easy', 0):>4} {counts.get('medium', 0):>4} {counts.get('hard', 0):>4}")
    print("\nexample response:\n" + figures["example_response"])
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
