from django.urls import path

from lookfirst.training import views

app_name = "training"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("compare/", views.compare, name="compare"),
    path("<int:job_id>/", views.job_detail, name="job"),
    path("<int:job_id>/cancel/", views.job_cancel, name="cancel"),
    path("<int:job_id>/resume/", views.job_resume, name="resume"),
]
