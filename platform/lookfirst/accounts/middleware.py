from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseForbidden, JsonResponse

from lookfirst.accounts.roles import Role, role_of

OPEN_PATHS = ("/accounts/login/", "/static/", "/healthz", "/labelstudio/images/")


class LoginRequiredMiddleware:
    """Every page needs a log-in, except the log-in page, static files and the health check."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated and request.path.startswith("/admin/") and role_of(request.user) < Role.ADMIN:
            return HttpResponseForbidden("The admin pages are for admins.")
        if request.user.is_authenticated or request.path.startswith(OPEN_PATHS):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            from lookfirst.api.services import bearer_user

            request.user = bearer_user(request) or request.user  # API clients log in with a bearer token
            if request.user.is_authenticated:
                return self.get_response(request)
            return JsonResponse({"detail": "authentication required"}, status=401)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
