from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "lookfirst.snapshots"
    label = "snapshots"
