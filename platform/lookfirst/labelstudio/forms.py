from __future__ import annotations

from django import forms

from lookfirst.pools.models import Pool


class ConnectionForm(forms.Form):
    url = forms.URLField(label="Label Studio URL", max_length=500, assume_scheme="http")
    token = forms.CharField(label="API token", required=False, max_length=2000,
                            widget=forms.PasswordInput(render_value=False),
                            help_text="leave empty to keep the stored token")
    lookfirst_url = forms.URLField(label="LookFirst URL seen by annotators", max_length=500, assume_scheme="http",
                                   help_text="image links in tasks point here")


class PushForm(forms.Form):
    pool = forms.ModelChoiceField(queryset=Pool.objects.order_by("name"), to_field_name="name")
    project = forms.CharField(max_length=50, label="Project name")
    filter = forms.CharField(required=False, label="Filter", help_text="e.g. bucket=medium&conf_max=0.6")
    items = forms.CharField(required=False, label="Item ids", help_text="comma-separated; overrides the filter")

    def clean_items(self) -> list[int] | None:
        raw = self.cleaned_data["items"].strip()
        if not raw:
            return None
        try:
            return [int(x) for x in raw.replace(" ", "").split(",") if x]
        except ValueError:
            raise forms.ValidationError("item ids are whole numbers separated by commas") from None
