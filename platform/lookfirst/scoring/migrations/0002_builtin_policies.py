from django.db import migrations


def seed(apps, schema_editor):
    from lookfirst.scoring.policies import BUILTIN_POLICIES

    BucketPolicy = apps.get_model("scoring", "BucketPolicy")
    for name, (description, rules, sort, reference_n) in BUILTIN_POLICIES.items():
        BucketPolicy.objects.update_or_create(
            name=name,
            defaults={"description": description, "rules": rules, "sort": sort, "reference_n": reference_n,
                      "builtin": True},
        )


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
