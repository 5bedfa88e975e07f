from django.urls import path

from lookfirst.curation import views

app_name = "curation"
urlpatterns = [
    path("pools/<slug:name>/items/", views.item_browser, name="browser"),
    path("pools/<slug:name>/review/", views.review, name="review"),
    path("pools/<slug:name>/bulk/", views.bulk, name="bulk"),
    path("items/<int:item_id>/", views.item_detail, name="item"),
    path("items/<int:item_id>/edit/", views.item_edit, name="edit"),
    path("items/<int:item_id>/neighbours/", views.item_neighbours, name="neighbours"),
    path("audit/<int:entry_id>/undo/", views.audit_undo, name="undo"),
    path("bulk/<int:job_id>/", views.bulk_job, name="bulk_job"),
    path("settings/", views.settings_page, name="settings"),
]
