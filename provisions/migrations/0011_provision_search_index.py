"""The GIN index behind full-text search on provisions (PostgreSQL only: SQLite has no GIN, and the
search falls back to a substring match there)."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations


class AddIndexOnPostgreSQL(migrations.AddIndex):
    """AddIndex whose database side runs on PostgreSQL only; the model state is the same everywhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("provisions", "0010_webhook_attempts"),
    ]

    operations = [
        AddIndexOnPostgreSQL(
            model_name="provision",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.search.SearchVector("reference", "title", "text", config="english"),
                name="provision_search",
            ),
        ),
    ]
