from django.db import migrations, models


def mark_queued_rows(apps, schema_editor):
    """Rows waiting for a worker, or running on one for a storyboard, are background work: the
    in-flight cap must not count them as requests. (A respond-async image already running
    cannot be told from a request's; it counts until it ends.)"""
    images = apps.get_model("imagegen", "GeneratedImage")
    images.objects.filter(status="pending").update(background=True)
    images.objects.filter(status="running", batch__isnull=False).update(background=True)


class Migration(migrations.Migration):
    dependencies = [
        ("imagegen", "0004_prompts_in_nfc"),
    ]

    operations = [
        migrations.AddField(
            model_name="generatedimage",
            name="background",
            # The database's own default too: processes of the previous release, still running
            # during a deploy, insert rows without this column.
            field=models.BooleanField(
                default=False,
                db_default=False,
                help_text="Queued for a worker (a storyboard, respond-async), not generated in a "
                "request: the per-user in-flight cap counts only request-time generations.",
            ),
        ),
        migrations.RunPython(mark_queued_rows, migrations.RunPython.noop),
    ]
