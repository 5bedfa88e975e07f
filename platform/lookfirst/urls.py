from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", lambda request: HttpResponse("ok", content_type="text/plain"), name="healthz"),
    path("admin/", admin.site.urls),
    path("ingest/", include("lookfirst.ingest.urls")),
    path("labelstudio/", include("lookfirst.labelstudio.urls")),
    path("api/", include("lookfirst.api.urls")),
    path("training/", include("lookfirst.training.urls")),
    path("", include("lookfirst.curation.urls")),
    path("", include("lookfirst.pools.urls")),
]
