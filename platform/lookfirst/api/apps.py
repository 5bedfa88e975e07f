from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "lookfirst.api"
    label = "api"
