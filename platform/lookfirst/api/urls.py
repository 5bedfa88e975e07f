from django.urls import path

from lookfirst.api.api import api

urlpatterns = [path("", api.urls)]
