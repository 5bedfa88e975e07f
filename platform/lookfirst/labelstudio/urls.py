from django.urls import path

from lookfirst.labelstudio import views

app_name = "labelstudio"
urlpatterns = [
    path("", views.projects, name="projects"),
    path("settings/", views.connection_settings, name="settings"),
    path("push/", views.push, name="push"),
    path("projects/<int:project_id>/", views.project_detail, name="project"),
    path("projects/<int:project_id>/pull/", views.pull, name="pull"),
    path("conflicts/<int:conflict_id>/resolve/", views.conflict_resolve, name="conflict_resolve"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("images/<str:token>", views.image, name="image"),
]
