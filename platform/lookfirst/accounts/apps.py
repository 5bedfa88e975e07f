from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "lookfirst.accounts"
    label = "accounts"
