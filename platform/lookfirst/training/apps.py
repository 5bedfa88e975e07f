from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "lookfirst.training"
    label = "training"
