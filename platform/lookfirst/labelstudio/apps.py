from django.apps import AppConfig


class LabelStudioConfig(AppConfig):
    name = "lookfirst.labelstudio"
    label = "labelstudio"
    verbose_name = "Label Studio"
