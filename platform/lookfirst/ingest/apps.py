from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "lookfirst.ingest"
    label = "ingest"
