from django import forms
from django.conf import settings

from lookfirst.ingest.readers import FORMATS


class UploadForm(forms.Form):
    pool = forms.SlugField(max_length=100, help_text="an existing pool, or a new name")
    format = forms.ChoiceField(choices=[("auto", "auto-detect")] + [(f, f) for f in FORMATS], initial="auto")
    file = forms.FileField(help_text="jsonl, json, parquet or a .zip of images with a metadata file")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.LOOKFIRST_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"file is {upload.size:,} bytes; the limit is {limit:,}")
        return upload
