"""Prompts and styles are kept in Unicode's composed form (NFC) since this migration: a row
stored before in another form would not replay the same request, now normalised on arrival."""

import unicodedata

from django.db import migrations

NORMALISE_IN_POSTGRESQL = """
UPDATE imagegen_generatedimage
SET visual_prompt = normalize(visual_prompt, NFC), art_style = normalize(art_style, NFC)
WHERE visual_prompt IS NOT NFC NORMALIZED OR art_style IS NOT NFC NORMALIZED
"""


def prompts_in_nfc(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_encoding")
            if cursor.fetchone()[0] == "UTF8":  # normalize() needs it
                cursor.execute(NORMALISE_IN_POSTGRESQL)
                return
    GeneratedImage = apps.get_model("imagegen", "GeneratedImage")
    rows = GeneratedImage.objects.values_list("pk", "visual_prompt", "art_style")
    for pk, prompt, style in rows.iterator():
        composed = unicodedata.normalize("NFC", prompt), unicodedata.normalize("NFC", style)
        if composed != (prompt, style):
            GeneratedImage.objects.filter(pk=pk).update(
                visual_prompt=composed[0], art_style=composed[1]
            )


class Migration(migrations.Migration):
    dependencies = [
        ("imagegen", "0003_batch_membership"),
    ]

    operations = [
        migrations.RunPython(prompts_in_nfc, migrations.RunPython.noop),
    ]
