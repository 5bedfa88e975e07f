"""Move stored image files from images/ab/cd/<sha256>.<ext> to images/ab/<sha256>.<ext>.

The database is unchanged: a file's path is computed from its sha256 and format. Files already at
the new place, or missing, are left alone; empty second-level folders are removed.
"""
import os

from django.conf import settings
from django.db import migrations


def _move(apps, *, forward: bool) -> None:
    root = os.path.join(str(settings.MEDIA_ROOT), "images")
    if not os.path.isdir(root):
        return
    Image = apps.get_model("pools", "Image")
    folders = set()
    for sha, fmt in Image.objects.values_list("sha256", "format").iterator(chunk_size=10_000):
        name = f"{sha}.{fmt.lower()}"
        two_level = os.path.join(root, sha[:2], sha[2:4], name)
        one_level = os.path.join(root, sha[:2], name)
        source, target = (two_level, one_level) if forward else (one_level, two_level)
        if os.path.exists(source) and not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(source, target)
            folders.add(os.path.dirname(two_level))
    if forward:
        for folder in folders:
            try:
                os.rmdir(folder)
            except OSError:  # not empty: files this database does not know of stay where they are
                pass


class Migration(migrations.Migration):

    dependencies = [
        ("pools", "0004_count_indexes"),
    ]

    operations = [
        migrations.RunPython(lambda apps, schema: _move(apps, forward=True),
                             lambda apps, schema: _move(apps, forward=False), elidable=True),
    ]
