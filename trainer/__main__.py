"""Command line of the trainer (stays light: torch is imported only inside a stage process).

    python -m trainer run --data EXPORT --recipe pebr-2stage|capcurriculum-3stage|merged --model SPEC --out DIR
                          [--config FILE.yaml] [--resume] [--clip local-dir:PATH] [--accelerate-config FILE]
    python -m trainer stage --run-dir DIR --stage NAME --start-model SPEC [--resume] [--eval-only]   (run starts it)
    python -m trainer config RECIPE [--config FILE.yaml]     print every field, its default, help and reason;
                                                             with --config, validate the file and print the result
"""

from __future__ import annotations

import argparse
import json
import sys

from trainer.config import RECIPES


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m trainer", description="Staged GRPO on a LookFirst export.")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train every stage of a recipe, each in a fresh process")
    run.add_argument("--data", required=True, help="export directory (holds manifest.json)")
    run.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    run.add_argument("--model", required=True, help="a saved model folder or a Hugging Face hub id")
    run.add_argument("--out", required=True, help="output directory: a new one, or an earlier run's with --resume")
    run.add_argument("--config", help="YAML overrides of the recipe's defaults (see trainer/configs/)")
    run.add_argument("--resume", action="store_true", help="continue the run already in --out")
    run.add_argument("--clip", help="open_clip model for the PeBR clip reward, as local-dir:PATH")
    run.add_argument("--accelerate-config", help="launch each stage with `accelerate launch` and this config "
                                                 "(trainer/accelerate/*.yaml)")

    stage = commands.add_parser("stage", help="one stage in this process (`run` starts it; see trainer/stage.py)")
    stage.add_argument("--run-dir", required=True)
    stage.add_argument("--stage", required=True)
    stage.add_argument("--start-model", required=True)
    stage.add_argument("--resume", action="store_true")
    stage.add_argument("--eval-only", action="store_true")

    config = commands.add_parser("config", help="print a recipe's fields, or validate a YAML against it")
    config.add_argument("recipe", choices=sorted(RECIPES))
    config.add_argument("--config", help="a YAML file to validate and print resolved")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        from trainer.run import main as run_main

        return run_main(args.data, args.recipe, args.model, args.out, args.config, args.resume, args.clip,
                        args.accelerate_config)
    if args.command == "stage":
        from trainer.stage import main as stage_main

        return stage_main(args.run_dir, args.stage, args.start_model, resume=args.resume, eval_only=args.eval_only)
    from trainer.config import ConfigError, describe, load_config, to_dict

    if not args.config:
        print(describe(args.recipe))
        return 0
    try:
        print(json.dumps(to_dict(load_config(args.recipe, args.config)), indent=2))
    except ConfigError as exc:
        print(f"trainer config: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
