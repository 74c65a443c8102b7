"""Another process writing to the tracker while tests/test_events.py's mirror follows the events feed:
imports the shipped partnership, then makes random writes through the services (status moves, edits,
positions, acknowledgements), each in its own transaction, with a fixed seed.

    python -m tests.mirror_writer WRITES SEED   (DATABASE_URL names the database; tasks in process)
"""

from __future__ import annotations

import io
import os
import random
import sys


def main(writes: int, seed: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnership.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from provisions.models import Firmness, Gap, Party, Provision, Stance, Status
    from provisions.permissions import Reader
    from provisions.services.provisions import position_set, provision_update
    from provisions.services.scans import gap_acknowledge
    from provisions.services.status import provision_transition

    shipped = os.path.join(
        os.path.dirname(__file__), "..", "provisions", "data", "uk-eu-security-partnership.yaml"
    )
    call_command("import_partnership", shipped, stdout=io.StringIO())
    chance = random.Random(seed)
    system = Reader.system()
    references = sorted(Provision.objects.values_list("reference", flat=True))
    parties = list(Party.objects.order_by("code"))
    for number in range(writes):
        provision = Provision.objects.select_related("domain").get(reference=chance.choice(references))
        kind = chance.choice(["move", "move", "edit", "position", "acknowledge"])
        if kind == "move":
            allowed = [
                status
                for status in Status.values
                if Status.move_refusal(provision.status, status, "mirror test") is None
            ]
            if allowed:
                provision_transition(
                    by=system, provision=provision, to=chance.choice(allowed), note="mirror test"
                )
        elif kind == "edit":
            provision_update(by=system, provision=provision, expected_version=None, text=f"Edit {number}")
        elif kind == "position":
            party = chance.choice(
                [party for party in parties if party.partnership_id == provision.domain.partnership_id]
            )
            position_set(
                by=system,
                provision=provision,
                party=party,
                stance=chance.choice(Stance.values),
                firmness=chance.choice(Firmness.values),
                expected_version=None,
            )
        else:
            gap = Gap.objects.open().filter(acknowledged_at__isnull=True).order_by("?").first()
            if gap is not None:
                gap_acknowledge(gap=gap, by=system, note=f"Seen {number}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
