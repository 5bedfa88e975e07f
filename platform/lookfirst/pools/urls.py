from django.urls import path

from lookfirst.pools import views

app_name = "pools"
urlpatterns = [
    path("", views.pool_list, name="list"),
    path("pools/<slug:name>/", views.pool_detail, name="detail"),
    path("media/images/<str:sha256>", views.image_file, name="image"),
    path("scoring/runs/<int:run_id>/status", views.scoring_run_status, name="scoring_run_status"),
]
