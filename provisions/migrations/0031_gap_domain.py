# A gap's domain (its subject's, as the last scan saw it), filled from its subject, and the indexes
# that read a domain's gaps.

import django.db.models.deletion
from django.db import migrations, models

FILL = """
UPDATE provisions_gap SET domain_id = COALESCE(
    (SELECT domain_id FROM provisions_capability WHERE provisions_capability.id = provisions_gap.capability_id),
    (SELECT domain_id FROM provisions_provision WHERE provisions_provision.id = provisions_gap.provision_id)
)
"""


class Migration(migrations.Migration):

    dependencies = [
        ('provisions', '0030_provision_marking_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='gap',
            name='domain',
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='provisions.domain'
            ),
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='gap',
            name='domain',
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name='+', to='provisions.domain'
            ),
        ),
        migrations.AddIndex(
            model_name='gap',
            index=models.Index(fields=['domain', 'opened_at', 'id'], name='gap_domain_opened_order'),
        ),
        migrations.AddIndex(
            model_name='gap',
            index=models.Index(models.F('domain'), models.OrderBy(models.Case(models.When(severity='critical', then=models.Value(3)), models.When(severity='high', then=models.Value(2)), models.When(severity='medium', then=models.Value(1)), models.When(severity='low', then=models.Value(0)), output_field=models.IntegerField()), descending=True), models.OrderBy(models.F('lapses_on')), models.F('kind'), condition=models.Q(('resolved_at__isnull', True)), name='gap_domain_open_report_order'),
        ),
    ]
