from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "lookfirst.scoring"
    label = "scoring"
