from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

NAMES = ("shapes-vlm", "shapes-clip")


class Command(BaseCommand):
    help = "Build (or load from the cache) the built-in shapes models, or print their acceptance report."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("build", "report", "path"))
        parser.add_argument("--items", type=int, default=500, help="report: fresh pool size")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, action: str, items: int, **options):
        from workers.models import builtin
        from workers.models.specs import builtin_folder

        if action == "path":
            for name in NAMES:
                self.stdout.write(f"lookfirst:{name} -> {builtin_folder(name)} ({'built' if builtin.is_built(builtin_folder(name)) else 'not built'})")
            return
        folders = {name: ensure_with_bar(name) for name in NAMES}
        if action == "build":
            for name, folder in folders.items():
                self.stdout.write(f"lookfirst:{name} ready in {folder}")
            return
        figures = builtin.report(folders["shapes-vlm"], folders["shapes-clip"], items=items)
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2, default=str))
            return
        for key, value in figures.items():
            self.stdout.write(f"{key}: {value}")


def ensure_with_bar(name: str):
    from workers.models import builtin
    from workers.models.specs import builtin_folder

    if builtin.is_built(builtin_folder(name)):
        return builtin_folder(name)
    with tqdm(total=1000, desc=f"build lookfirst:{name}", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = int(1000 * min(max(fraction, 0.0), 1.0))
            bar.set_postfix_str(message[:40])
            bar.refresh()

        try:
            return builtin.ensure_builtin(name, progress=progress)
        except Exception as exc:
            raise CommandError(f"could not build lookfirst:{name}: {exc}") from exc
