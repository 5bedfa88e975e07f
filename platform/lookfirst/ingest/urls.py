from django.urls import path

from lookfirst.ingest import views

app_name = "ingest"
urlpatterns = [
    path("upload/", views.upload, name="upload"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/status", views.run_status, name="run_status"),
]
