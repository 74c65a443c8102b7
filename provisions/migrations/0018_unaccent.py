"""Search folds accents ("Prum" finds "Prüm"): PostgreSQL's unaccent extension (a trusted extension:
the database's owner may create it). Nothing to do on SQLite, where the app registers the function."""

from django.contrib.postgres.operations import UnaccentExtension
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("provisions", "0017_rules_v2_dated_values")]

    operations = [UnaccentExtension()]
