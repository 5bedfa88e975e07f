from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "lookfirst.curation"
    label = "curation"
