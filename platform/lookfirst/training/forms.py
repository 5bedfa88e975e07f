from django import forms

from lookfirst.training.models import RECIPES


class LaunchForm(forms.Form):
    snapshot = forms.IntegerField(min_value=1)
    recipe = forms.ChoiceField(choices=[(r, r) for r in RECIPES])
    model_spec = forms.CharField(initial="lookfirst:shapes-vlm", max_length=500)
    clip_spec = forms.CharField(initial="lookfirst:shapes-clip", max_length=500, required=False)
    config_name = forms.CharField(initial="cpu-demo.yaml", max_length=100)
    overrides = forms.JSONField(required=False, initial=dict, help_text='e.g. {"max_steps": 20}')
