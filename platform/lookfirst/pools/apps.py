from django.apps import AppConfig


class PoolsConfig(AppConfig):
    name = "lookfirst.pools"
    label = "pools"
