"""Partnership files (DESIGN.md, "Contracts"): import as an all-or-nothing upsert, and export.

The JSON schema beside the shipped data is the contract. A bad file gets every problem listed
with its path (`provisions[3].covers[0].capability: unknown capability 'SIS-3'`) and nothing is
written. Export writes the same format, so export then import is a round trip.
"""

from provisions.services.partnership_file.exporting import partnership_export, write_partnership_file
from provisions.services.partnership_file.importing import ImportReport, partnership_import
from provisions.services.partnership_file.reading import (
    IMPORT_NOTE,
    SCHEMA_PATH,
    PartnershipFileInvalid,
    Problem,
    check_partnership_file,
    read_partnership_file,
)

__all__ = [
    "IMPORT_NOTE",
    "SCHEMA_PATH",
    "ImportReport",
    "PartnershipFileInvalid",
    "Problem",
    "check_partnership_file",
    "partnership_export",
    "partnership_import",
    "read_partnership_file",
    "write_partnership_file",
]
