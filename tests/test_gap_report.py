"""The gap report (DESIGN.md, "Gap report columns") through the `export_gaps` and `scan_gaps` commands.

Expected rows are written out by hand from DESIGN.md's tables (and, for the shipped partnership
file, from the YAML), never computed by the code under test.
"""

from __future__ import annotations

import csv
import datetime
import json
from io import StringIO
from pathlib import Path
from typing import Any

import openpyxl
import pypdf
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from provisions.models import Capability, Extent, Gap, Provision, StatusChange
from provisions.permissions import Reader
from provisions.reports.gaps import GAP_REPORT_COLUMNS
from provisions.services.scans import gap_acknowledge
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)

pytestmark = [
    pytest.mark.django_db,
    # tests/factories.py: ProvisionFactory lacks Meta.skip_postgeneration_save (factory_boy deprecation).
    pytest.mark.filterwarnings("ignore:ProvisionFactory._after_postgeneration:DeprecationWarning"),
]

# DESIGN.md, "Gap report columns", in this order.
DESIGN_COLUMNS = [
    "kind",
    "severity",
    "subject_type",
    "subject_code",
    "subject_name",
    "domain",
    "coverage_state",
    "lapses_on",
    "days_to_lapse",
    "covering_provisions",
    "explanation",
    "opened_at",
    "state",
]

T = datetime.date(2020, 7, 1)


def day(offset: int, base: datetime.date = T) -> datetime.date:
    return base + datetime.timedelta(days=offset)


# --- helpers: building subjects, exporting, reading back ---------------------------------------------------


def capability(code: str, criticality: str, lapses_on: datetime.date | None, **fields: Any) -> Capability:
    return CapabilityFactory(code=code, criticality=criticality, lapses_on=lapses_on, **fields)


def provision(
    reference: str,
    status: str,
    created: datetime.date,
    *,
    covers: list[tuple[Capability, str]] = (),  # type: ignore[assignment]
    opposed: bool = False,
    withdrawn_on: datetime.date | None = None,
    **fields: Any,
) -> Provision:
    made = ProvisionFactory(reference=reference, status=status, created_on=created, **fields)
    if withdrawn_on is not None:
        StatusChange.objects.create(
            provision=made, from_status=status, to_status="withdrawn", changed_on=withdrawn_on, note="dropped"
        )
        Provision.objects.filter(pk=made.pk).update(status="withdrawn")
    for covered, extent in covers:
        CoverageFactory(provision=made, capability=covered, extent=extent)
    if opposed:
        PositionFactory(provision=made, party=PartyFactory(code="UK"), stance="proposes")
        PositionFactory(provision=made, party=PartyFactory(code="EU"), stance="opposes")
    return made


def export(tmp_path: Path, fmt: str = "csv", *options: str) -> Path:
    output = tmp_path / f"gaps-{len(list(tmp_path.iterdir()))}.{fmt}"
    call_command("export_gaps", "--format", fmt, "--output", str(output), *options, stdout=StringIO())
    return output


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbfkind,"), "UTF-8 with a byte-order mark, for Excel"
    with path.open(encoding="utf-8-sig", newline="") as text:
        rows = list(csv.reader(text))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body]


def csv_rows(tmp_path: Path, *options: str) -> list[dict[str, str]]:
    header, rows = read_csv(export(tmp_path, "csv", *options))
    assert header == DESIGN_COLUMNS
    return rows


def read_json(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as text:
        return json.load(text)


def read_xlsx(path: Path) -> tuple[list[str], list[dict[str, Any]], list[list[Any]]]:
    """Header, rows as values, and the cells themselves (to check their data types)."""
    workbook = openpyxl.load_workbook(path)
    sheet = workbook.worksheets[-1]  # the rows sheet, after the summary sheet
    cells = [list(row) for row in sheet.iter_rows()]
    header = [cell.value for cell in cells[0]]
    rows = [dict(zip(header, (cell.value for cell in row), strict=True)) for row in cells[1:]]
    return header, rows, cells[1:]


def as_text(value: Any) -> str:
    """One cell as the CSV writes it: empty for nothing, ISO 8601 for dates, digits for numbers."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime) and value.time() == datetime.time(0):
        return value.date().isoformat()  # openpyxl reads date cells as datetimes at midnight
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def summary(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(row["kind"], row["severity"], row["subject_code"]) for row in rows]


# --- a small world at T, its rows worked out by hand ------------------------------------------------------


@pytest.fixture
def world():
    le = DomainFactory(code="law-enforcement")
    cj = DomainFactory(code="criminal-justice")
    cap_a = capability("CAP-A", "critical", day(10), name="Alerts", domain=le)
    capability("CAP-B", "high", day(-5), name="Biometrics", domain=cj)
    capability("CAP-C", "medium", None, name="Consultation", domain=cj)
    capability("CAP-D", "critical", day(10), name="Databases", domain=le)
    cap_e = capability("CAP-E", "high", day(100), name="Evidence", domain=cj)
    provision(
        "SP-1",
        "proposed",
        day(-100),
        covers=[(cap_a, Extent.PARTIAL), (cap_e, Extent.FULL)],
        domain=le,
        title="One",
    )
    provision(
        "SP-2", "proposed", day(-1), covers=[(cap_a, Extent.FULL)], opposed=True, domain=le, title="Two"
    )
    provision("SP-3", "agreed", day(-100), covers=[(cap_e, Extent.PARTIAL)], domain=cj, title="Three")
    provision("SP-0", "proposed", day(-200), covers=[(cap_a, Extent.FULL)], withdrawn_on=day(-100), domain=le)
    provision("SP-9", "agreed", day(5), covers=[(cap_a, Extent.FULL)], domain=le)  # not yet at T


# kind, severity, subject_type, subject_code, subject_name, domain, coverage_state, lapses_on, days_to_lapse,
# covering_provisions; sorted by severity, lapses_on (empty last), kind, subject_code.
WORLD_ROWS = [
    ("lapsed", "critical", "capability", "CAP-B", "Biometrics", "criminal-justice",
     "uncovered", "2020-06-26", "-5", ""),
    ("at_risk", "critical", "capability", "CAP-A", "Alerts", "law-enforcement",
     "in_negotiation", "2020-07-11", "10", "SP-1;SP-2"),
    ("divergent", "critical", "provision", "SP-2", "Two", "law-enforcement",
     "", "2020-07-11", "10", ""),
    ("uncovered", "critical", "capability", "CAP-D", "Databases", "law-enforcement",
     "uncovered", "2020-07-11", "10", ""),
    ("stalled", "high", "provision", "SP-1", "One", "law-enforcement",
     "", "2020-07-11", "10", ""),
    ("at_risk", "medium", "capability", "CAP-E", "Evidence", "criminal-justice",
     "partial", "2020-10-09", "100", "SP-1;SP-3"),
    ("uncovered", "low", "capability", "CAP-C", "Consultation", "criminal-justice",
     "uncovered", "", "", ""),
]  # fmt: skip


def test_the_columns_are_designs_in_order():
    assert list(GAP_REPORT_COLUMNS) == DESIGN_COLUMNS


def test_the_csv_header_is_exactly_designs_columns_even_with_no_rows(tmp_path):
    header, rows = read_csv(export(tmp_path, "csv", "--as-of", "2020-07-01"))

    assert (header, rows) == (DESIGN_COLUMNS, [])


def test_the_csv_rows_are_the_ones_worked_out_by_hand(world, tmp_path):
    rows = csv_rows(tmp_path, "--as-of", T.isoformat())

    assert [tuple(row[column] for column in DESIGN_COLUMNS[:10]) for row in rows] == WORLD_ROWS
    assert all((row["opened_at"], row["state"]) == ("", "") for row in rows)


def test_capability_gaps_list_the_active_covering_provisions_sorted_and_joined(world, tmp_path):
    rows = {row["subject_code"]: row for row in csv_rows(tmp_path, "--as-of", T.isoformat())}

    assert rows["CAP-A"]["covering_provisions"] == "SP-1;SP-2"  # not SP-0 (withdrawn) nor SP-9 (not yet)
    assert rows["CAP-E"]["covering_provisions"] == "SP-1;SP-3"
    assert rows["CAP-D"]["covering_provisions"] == ""


def test_provision_gaps_have_no_coverage_and_the_earliest_lapse_of_what_they_cover(world, tmp_path):
    rows = [row for row in csv_rows(tmp_path, "--as-of", T.isoformat()) if row["subject_type"] == "provision"]

    assert [
        (r["subject_code"], r["coverage_state"], r["covering_provisions"], r["lapses_on"]) for r in rows
    ] == [
        ("SP-2", "", "", "2020-07-11"),
        ("SP-1", "", "", "2020-07-11"),  # covers CAP-A (2020-07-11) and CAP-E (2020-10-09)
    ]


def test_days_to_lapse_is_negative_once_lapsed(world, tmp_path):
    rows = {row["subject_code"]: row for row in csv_rows(tmp_path, "--as-of", day(20).isoformat())}

    lapsed = rows["CAP-D"]
    assert (lapsed["kind"], lapsed["severity"], lapsed["lapses_on"], lapsed["days_to_lapse"]) == (
        "lapsed",
        "critical",
        "2020-07-11",
        "-10",
    )
    assert rows["CAP-B"]["days_to_lapse"] == "-25"
    assert rows["SP-2"]["days_to_lapse"] == "-10"  # a provision gap: from its earliest covered lapse
    assert "CAP-A" not in rows  # secured since 2020-07-06 by SP-9: past its lapse, no gap


def test_rows_are_sorted_by_severity_then_lapse_date_empty_last_then_kind_then_code(tmp_path):
    domain = DomainFactory()
    capability("CAP-CRIT", "critical", day(100), domain=domain)  # uncovered within warning: critical
    capability("CAP-Z", "high", day(50), domain=domain)  # uncovered: high
    capability("CAP-V", "high", day(50), domain=domain)
    capability("CAP-Y", "high", day(20), domain=domain)
    capability("CAP-W", "critical", None, domain=domain)  # uncovered, no lapse date: high
    at_risk = capability("CAP-X", "critical", day(50), domain=domain)  # in negotiation beyond urgent: high
    provision("SP-X", "proposed", day(-1), covers=[(at_risk, Extent.FULL)], domain=domain)
    capability("CAP-A0", "low", day(1), domain=domain)  # low, however soon

    rows = csv_rows(tmp_path, "--as-of", T.isoformat())

    assert summary(rows) == [
        ("uncovered", "critical", "CAP-CRIT"),
        ("uncovered", "high", "CAP-Y"),
        ("at_risk", "high", "CAP-X"),
        ("uncovered", "high", "CAP-V"),
        ("uncovered", "high", "CAP-Z"),
        ("uncovered", "high", "CAP-W"),
        ("uncovered", "low", "CAP-A0"),
    ]


# --- filters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "codes"),
    [
        (["--domain", "criminal-justice"], ["CAP-B", "CAP-E", "CAP-C"]),
        (["--severity", "critical"], ["CAP-B", "CAP-A", "SP-2", "CAP-D"]),
        (["--kind", "at_risk"], ["CAP-A", "CAP-E"]),
        (["--kind", "stalled"], ["SP-1"]),
        (["--domain", "law-enforcement", "--severity", "critical"], ["CAP-A", "SP-2", "CAP-D"]),
        (["--domain", "criminal-justice", "--kind", "divergent"], []),
        (["--severity", "low", "--kind", "uncovered"], ["CAP-C"]),
    ],
)
def test_filters(world, tmp_path, options, codes):
    rows = csv_rows(tmp_path, "--as-of", T.isoformat(), *options)

    assert [row["subject_code"] for row in rows] == codes


@pytest.mark.parametrize(
    "options",
    [["--domain", "nowhere"], ["--severity", "urgent"], ["--kind", "missing"]],
)
def test_an_unknown_filter_value_is_a_command_error(world, tmp_path, options):
    output = tmp_path / "gaps.csv"

    with pytest.raises(CommandError):
        call_command(
            "export_gaps", "--format", "csv", "--output", str(output), "--as-of", "2020-07-01", *options
        )
    assert not output.exists()


# --- formats: the same rows in CSV, JSON and XLSX ---------------------------------------------------------


def test_csv_json_and_xlsx_carry_the_same_rows(world, tmp_path):
    as_of = ("--as-of", T.isoformat())
    _, from_csv = read_csv(export(tmp_path, "csv", *as_of))
    from_json = read_json(export(tmp_path, "json", *as_of))
    header, from_xlsx, _ = read_xlsx(export(tmp_path, "xlsx", *as_of))

    assert header == DESIGN_COLUMNS
    assert all(list(row) == DESIGN_COLUMNS for row in from_json)
    as_texts = [
        [{column: as_text(row[column]) for column in DESIGN_COLUMNS} for row in rows]
        for rows in (
            from_json,
            from_xlsx,
        )
    ]
    assert as_texts[0] == from_csv
    assert as_texts[1] == from_csv
    assert [tuple(row[column] for column in DESIGN_COLUMNS[:10]) for row in from_csv] == WORLD_ROWS


def test_json_keeps_numbers_as_numbers_and_empty_as_null(world, tmp_path):
    rows = {row["subject_code"]: row for row in read_json(export(tmp_path, "json", "--as-of", T.isoformat()))}

    assert (rows["CAP-B"]["days_to_lapse"], rows["CAP-B"]["lapses_on"]) == (-5, "2020-06-26")
    assert (rows["CAP-C"]["days_to_lapse"], rows["CAP-C"]["lapses_on"]) == (None, None)
    assert (rows["SP-2"]["coverage_state"], rows["SP-2"]["covering_provisions"]) == (None, None)
    assert (rows["SP-2"]["opened_at"], rows["SP-2"]["state"]) == (None, None)


FORMULA = '=HYPERLINK("http://example.org/","click me")'


def test_a_name_starting_with_equals_is_not_a_formula_in_xlsx(tmp_path):
    capability("CAP-F", "high", day(10), name=FORMULA)

    _, rows, cells = read_xlsx(export(tmp_path, "xlsx", "--as-of", T.isoformat()))

    [row] = rows
    [name_cell] = [cells[0][DESIGN_COLUMNS.index("subject_name")]]
    explanation_cell = cells[0][DESIGN_COLUMNS.index("explanation")]
    assert (row["subject_code"], row["subject_name"]) == ("CAP-F", FORMULA)
    assert name_cell.data_type != "f"
    assert explanation_cell.data_type != "f"
    assert all(cell.data_type != "f" for cell in cells[0])


def test_a_name_starting_with_equals_is_neutralised_in_csv(tmp_path):
    capability("CAP-F", "high", day(10), name=FORMULA)

    [row] = csv_rows(tmp_path, "--as-of", T.isoformat())

    assert row["subject_code"] == "CAP-F"
    for column in ("subject_name", "explanation"):
        assert not row[column].startswith(("=", "+", "-", "@")), column
        assert FORMULA in row[column]


def test_export_gaps_writes_a_pdf_a_reader_can_read(world, tmp_path):
    csv_lines = csv_rows(tmp_path, "--as-of", T.isoformat())
    output = export(tmp_path, "pdf", "--as-of", T.isoformat())

    reader = pypdf.PdfReader(output)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert reader.pages[0].mediabox.width > reader.pages[0].mediabox.height  # landscape
    assert f"As of {T:%-d %B %Y}" in text  # in words, as the pages write dates
    assert f"{len(csv_lines)} gaps" in text
    for row in csv_lines:
        assert row["subject_code"] in text


# --- opened_at and state ----------------------------------------------------------------------------------


@pytest.fixture
def gaps_today():
    today = timezone.localdate()
    covered = capability("CAP-TODAY", "high", day(10, today))
    provision("SP-TODAY", "proposed", day(-100, today), covers=[(covered, Extent.FULL)])
    return today


def test_opened_at_and_state_are_empty_with_as_of(gaps_today, tmp_path):
    call_command("scan_gaps", stdout=StringIO())

    rows = csv_rows(tmp_path, "--as-of", gaps_today.isoformat())

    assert summary(rows) == [("at_risk", "high", "CAP-TODAY"), ("stalled", "medium", "SP-TODAY")]
    assert all((row["opened_at"], row["state"]) == ("", "") for row in rows)


def test_opened_at_and_state_are_filled_after_a_scan_without_as_of(gaps_today, tmp_path):
    call_command("scan_gaps", stdout=StringIO())

    rows = csv_rows(tmp_path)

    assert summary(rows) == [("at_risk", "high", "CAP-TODAY"), ("stalled", "medium", "SP-TODAY")]
    for row in rows:
        assert row["state"] == "open"
        opened_at = datetime.datetime.fromisoformat(row["opened_at"])  # ISO 8601
        assert timezone.localtime(opened_at).date() == gaps_today


def test_state_follows_acknowledgement(gaps_today, tmp_path):
    call_command("scan_gaps", stdout=StringIO())
    gap_acknowledge(
        gap=Gap.objects.get(kind="stalled"),
        by=Reader.of(UserFactory(role="analyst")),
        note="talks resume next week",
    )

    rows = {row["subject_code"]: row for row in csv_rows(tmp_path)}

    assert (rows["CAP-TODAY"]["state"], rows["SP-TODAY"]["state"]) == ("open", "acknowledged")


def test_xlsx_and_json_carry_opened_at_and_state_after_a_scan(gaps_today, tmp_path):
    call_command("scan_gaps", stdout=StringIO())

    from_json = read_json(export(tmp_path, "json"))
    _, from_xlsx, _ = read_xlsx(export(tmp_path, "xlsx"))

    assert [row["state"] for row in from_json] == ["open", "open"]
    assert [row["state"] for row in from_xlsx] == ["open", "open"]
    for row in from_json:
        assert datetime.datetime.fromisoformat(row["opened_at"]).date() == gaps_today
    for row in from_xlsx:
        assert isinstance(row["opened_at"], datetime.datetime)


def test_scan_gaps_for_a_past_date_prints_and_persists_nothing(gaps_today):
    out = StringIO()

    call_command("scan_gaps", "--as-of", day(-200, gaps_today).isoformat(), stdout=out)

    assert Gap.objects.count() == 0
    assert "SP-TODAY" not in out.getvalue()  # it did not exist 200 days ago
    assert "CAP-TODAY" in out.getvalue()


# --- the shipped partnership file, checked by hand --------------------------------------------------------

# From data/uk-eu-security-partnership.yaml, by hand.
CAPABILITY_DOMAINS = {
    **dict.fromkeys(["SIS-II", "PRUM", "PNR", "EUROPOL", "SIENA", "AML-CTF"], "law-enforcement"),
    **dict.fromkeys(["EAW", "EIO", "ECRIS", "EUROJUST", "JIT", "FREEZE-CONFISCATE"], "criminal-justice"),
    **dict.fromkeys(["CFSP-CONSULT", "SANCTIONS", "INTCEN"], "foreign-policy"),
    **dict.fromkeys(["CSDP", "EDA", "EDF", "PESCO", "GALILEO-PRS"], "security-defence"),
    "EXTERNAL-INSTRUMENTS": "development",
    **dict.fromkeys(["EURODAC", "DUBLIN-III", "FRONTEX"], "asylum-migration"),
    **dict.fromkeys(["ENISA-NIS", "CERT-EU", "EC3"], "cyber-security"),
    "CT-COOP": "counter-terrorism",
    "UCPM": "civil-protection",
    **dict.fromkeys(["EWRS", "ECDC"], "health-security"),
    **dict.fromkeys(["CLASSIFIED-INFO", "DATA-FLOWS"], "enablers"),
}
PROVISION_DOMAINS = {
    "LE": "law-enforcement",
    "CJ": "criminal-justice",
    "FP": "foreign-policy",
    "SD": "security-defence",
    "DV": "development",
    "AM": "asylum-migration",
    "CY": "cyber-security",
    "CT": "counter-terrorism",
    "CP": "civil-protection",
    "HS": "health-security",
    "EN": "enablers",
}

# At 2020-12-20 (rules v2: the record as it stood that day): the provisions sharing SP-LE-01's history are
# under negotiation since 2020-05-19 but were discussed in the rounds up to 2020-11-27 (23 days: not stalled);
# SP-LE-04 proposed since 2020-05-19 with nothing since (215 days: stalled) and the EU opposing it then
# (divergent); SP-AM-01/02 proposed since 2020-05-19, the EU opposing (withdrawn only on 12-24); SP-CP-01
# identified since 2019-10-17; SP-EN-03 identified, last discussed 2020-10-02 (79 days: stalled, covering
# DATA-FLOWS: critical, one level lower); SP-DV-01 in force, partial; the SP-FP/SP-SD ones withdrawn in
# February. Every capability still lapses on 2020-12-31 (11 days: urgent), DATA-FLOWS included: its move to
# 2021-06-30 (the bridge clause) is dated 2020-12-24, after T.
AT_2020_12_20 = """
at_risk   | critical | DATA-FLOWS           | in_negotiation | 2020-12-31 | 11  | SP-EN-03
at_risk   | critical | EAW                  | in_negotiation | 2020-12-31 | 11  | SP-CJ-01
at_risk   | critical | ECRIS                | in_negotiation | 2020-12-31 | 11  | SP-CJ-03
at_risk   | critical | EUROPOL              | in_negotiation | 2020-12-31 | 11  | SP-LE-03
at_risk   | critical | PNR                  | in_negotiation | 2020-12-31 | 11  | SP-LE-02
at_risk   | critical | PRUM                 | in_negotiation | 2020-12-31 | 11  | SP-LE-01
at_risk   | critical | SIS-II               | in_negotiation | 2020-12-31 | 11  | SP-LE-04
divergent | critical | SP-LE-04             |                | 2020-12-31 | 11  |
at_risk   | high     | CLASSIFIED-INFO      | in_negotiation | 2020-12-31 | 11  | SP-EN-01
at_risk   | high     | CT-COOP              | in_negotiation | 2020-12-31 | 11  | SP-CT-01;SP-LE-03
at_risk   | high     | DUBLIN-III           | in_negotiation | 2020-12-31 | 11  | SP-AM-01;SP-AM-02
at_risk   | high     | EC3                  | in_negotiation | 2020-12-31 | 11  | SP-LE-03
at_risk   | high     | EIO                  | in_negotiation | 2020-12-31 | 11  | SP-CJ-02
at_risk   | high     | EURODAC              | in_negotiation | 2020-12-31 | 11  | SP-AM-02
at_risk   | high     | EUROJUST             | in_negotiation | 2020-12-31 | 11  | SP-CJ-04
at_risk   | high     | EWRS                 | in_negotiation | 2020-12-31 | 11  | SP-HS-01
at_risk   | high     | FREEZE-CONFISCATE    | in_negotiation | 2020-12-31 | 11  | SP-CJ-05
at_risk   | high     | SIENA                | in_negotiation | 2020-12-31 | 11  | SP-LE-03
divergent | high     | SP-AM-01             |                | 2020-12-31 | 11  |
divergent | high     | SP-AM-02             |                | 2020-12-31 | 11  |
stalled   | high     | SP-EN-03             |                | 2020-12-31 | 11  |
stalled   | high     | SP-LE-04             |                | 2020-12-31 | 11  |
uncovered | high     | SANCTIONS            | uncovered      | 2020-12-31 | 11  |
at_risk   | medium   | AML-CTF              | in_negotiation | 2020-12-31 | 11  | SP-LE-06
at_risk   | medium   | ECDC                 | in_negotiation | 2020-12-31 | 11  | SP-HS-01
at_risk   | medium   | ENISA-NIS            | in_negotiation | 2020-12-31 | 11  | SP-CY-01
at_risk   | medium   | JIT                  | in_negotiation | 2020-12-31 | 11  | SP-CJ-02
at_risk   | medium   | UCPM                 | in_negotiation | 2020-12-31 | 11  | SP-CP-01
stalled   | medium   | SP-AM-01             |                | 2020-12-31 | 11  |
stalled   | medium   | SP-AM-02             |                | 2020-12-31 | 11  |
uncovered | medium   | CFSP-CONSULT         | uncovered      | 2020-12-31 | 11  |
uncovered | medium   | CSDP                 | uncovered      | 2020-12-31 | 11  |
uncovered | medium   | FRONTEX              | uncovered      | 2020-12-31 | 11  |
uncovered | medium   | INTCEN               | uncovered      | 2020-12-31 | 11  |
at_risk   | low      | CERT-EU              | in_negotiation | 2020-12-31 | 11  | SP-CY-01
at_risk   | low      | EXTERNAL-INSTRUMENTS | partial        | 2020-12-31 | 11  | SP-DV-01
stalled   | low      | SP-CP-01             |                | 2020-12-31 | 11  |
uncovered | low      | EDA                  | uncovered      | 2020-12-31 | 11  |
uncovered | low      | EDF                  | uncovered      |            |     |
uncovered | low      | GALILEO-PRS          | uncovered      |            |     |
uncovered | low      | PESCO                | uncovered      |            |     |
"""

# At 2021-01-05: the SP-LE-01 history is in force since 2021-01-01. A capability replaced by a narrower
# provision is partial (one level below its criticality), not lapsed: EAW, ECRIS, EUROPOL, PNR and the
# others; a real loss is lapsed (criticality raised, or itself with a fallback: SIS-II). DATA-FLOWS lapses
# on 2021-06-30 (moved on 2020-12-24), partly secured by SP-EN-02 until it expires on 2021-07-01: its
# coverage ends in 177 days (within warning, beyond urgent: expiring, one level lower than critical).
# SP-EN-03, identified since 2019-10-17 and last discussed 2020-10-02, is stalled. PRUM, SIENA, JIT, CERT-EU
# and CLASSIFIED-INFO are secured by a full secured provision: no gap.
AT_2021_01_05 = """
lapsed    | critical | DUBLIN-III           | uncovered      | 2020-12-31 | -5  |
lapsed    | critical | EURODAC              | uncovered      | 2020-12-31 | -5  |
lapsed    | critical | SIS-II               | uncovered      | 2020-12-31 | -5  |
lapsed    | high     | CFSP-CONSULT         | uncovered      | 2020-12-31 | -5  |
lapsed    | high     | CSDP                 | uncovered      | 2020-12-31 | -5  |
lapsed    | high     | FRONTEX              | uncovered      | 2020-12-31 | -5  |
lapsed    | high     | SANCTIONS            | uncovered      | 2020-12-31 | -5  |
partial   | high     | EAW                  | partial        | 2020-12-31 | -5  | SP-CJ-01
partial   | high     | ECRIS                | partial        | 2020-12-31 | -5  | SP-CJ-03
partial   | high     | EUROPOL              | partial        | 2020-12-31 | -5  | SP-LE-03
partial   | high     | PNR                  | partial        | 2020-12-31 | -5  | SP-LE-02
stalled   | high     | SP-EN-03             |                | 2021-06-30 | 176 |
expiring  | high     | DATA-FLOWS           | partial        | 2021-07-01 | 177 | SP-EN-02;SP-EN-03
lapsed    | medium   | EDA                  | uncovered      | 2020-12-31 | -5  |
lapsed    | medium   | INTCEN               | uncovered      | 2020-12-31 | -5  |
lapsed    | medium   | UCPM                 | uncovered      | 2020-12-31 | -5  |
partial   | medium   | CT-COOP              | partial        | 2020-12-31 | -5  | SP-CT-01;SP-LE-03
partial   | medium   | EC3                  | partial        | 2020-12-31 | -5  | SP-LE-03
partial   | medium   | EIO                  | partial        | 2020-12-31 | -5  | SP-CJ-02
partial   | medium   | EUROJUST             | partial        | 2020-12-31 | -5  | SP-CJ-04
partial   | medium   | EWRS                 | partial        | 2020-12-31 | -5  | SP-HS-01
partial   | medium   | FREEZE-CONFISCATE    | partial        | 2020-12-31 | -5  | SP-CJ-05
partial   | low      | AML-CTF              | partial        | 2020-12-31 | -5  | SP-LE-06
partial   | low      | ECDC                 | partial        | 2020-12-31 | -5  | SP-HS-01
partial   | low      | ENISA-NIS            | partial        | 2020-12-31 | -5  | SP-CY-01
partial   | low      | EXTERNAL-INSTRUMENTS | partial        | 2020-12-31 | -5  | SP-DV-01
uncovered | low      | EDF                  | uncovered      |            |     |
uncovered | low      | GALILEO-PRS          | uncovered      |            |     |
uncovered | low      | PESCO                | uncovered      |            |     |
"""


def hand_rows(table: str) -> list[dict[str, str]]:
    rows = []
    for line in table.strip().splitlines():
        kind, severity, code, state, lapses_on, days, covering = (cell.strip() for cell in line.split("|"))
        on_provision = code.startswith("SP-")
        rows.append(
            {
                "kind": kind,
                "severity": severity,
                "subject_type": "provision" if on_provision else "capability",
                "subject_code": code,
                "domain": PROVISION_DOMAINS[code[3:5]] if on_provision else CAPABILITY_DOMAINS[code],
                "coverage_state": state,
                "lapses_on": lapses_on,
                "days_to_lapse": days,
                "covering_provisions": covering,
                "opened_at": "",
                "state": "",
            }
        )
    return rows


def without_names(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {column: value for column, value in row.items() if column not in ("subject_name", "explanation")}
        for row in rows
    ]


@pytest.fixture
def shipped(shipped_partnership_file):
    call_command("import_partnership", shipped_partnership_file, stdout=StringIO())


def test_the_hand_table_is_in_designs_order():
    """The tables above, sorted by DESIGN's rule: a check on the hand work, not on the code."""
    weight = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    for table in (AT_2020_12_20, AT_2021_01_05):
        rows = hand_rows(table)
        keys = [
            (weight[r["severity"]], r["lapses_on"] == "", r["lapses_on"], r["kind"], r["subject_code"])
            for r in rows
        ]
        assert keys == sorted(keys)


def test_shipped_file_before_the_end_of_transition(shipped, tmp_path):
    rows = csv_rows(tmp_path, "--as-of", "2020-12-20")

    assert summary(rows) == summary(hand_rows(AT_2020_12_20))
    assert without_names(rows) == hand_rows(AT_2020_12_20)
    named = {row["subject_code"]: row for row in rows}
    assert named["SIS-II"]["subject_name"] == "Schengen Information System II alerts"
    assert (
        named["SP-LE-04"]["subject_name"]
        == "Real-time exchange of alerts on wanted and missing persons and objects"
    )
    assert len(rows) == 41


def test_shipped_file_after_the_lapse(shipped, tmp_path):
    rows = csv_rows(tmp_path, "--as-of", "2021-01-05")

    assert summary(rows) == summary(hand_rows(AT_2021_01_05))
    assert without_names(rows) == hand_rows(AT_2021_01_05)
    assert len(rows) == 29


@pytest.mark.parametrize("as_of", ["2020-12-20", "2021-01-05"])
def test_shipped_file_explanations_mention_the_subject_and_lapse_date(shipped, tmp_path, as_of):
    for row in csv_rows(tmp_path, "--as-of", as_of):
        assert row["subject_code"] in row["explanation"]
        if row["subject_type"] == "capability" and row["lapses_on"]:
            assert row["lapses_on"] in row["explanation"], row["subject_code"]
        if row["kind"] == "divergent":
            assert row["lapses_on"] in row["explanation"], row["subject_code"]


@pytest.mark.parametrize(
    ("options", "keep"),
    [
        (["--domain", "law-enforcement"], lambda row: row["domain"] == "law-enforcement"),
        (["--severity", "high"], lambda row: row["severity"] == "high"),
        (["--kind", "stalled"], lambda row: row["kind"] == "stalled"),
        (["--domain", "asylum-migration", "--kind", "divergent"],
         lambda row: row["subject_code"].startswith("SP-AM") and row["kind"] == "divergent"),
        (["--domain", "enablers", "--severity", "high"],
         lambda row: row["subject_code"] in ("CLASSIFIED-INFO", "SP-EN-03")),
    ],
)  # fmt: skip
def test_shipped_file_filtered(shipped, tmp_path, options, keep):
    rows = csv_rows(tmp_path, "--as-of", "2020-12-20", *options)

    expected = [row for row in hand_rows(AT_2020_12_20) if keep(row)]
    assert expected
    assert without_names(rows) == expected


def test_shipped_file_in_csv_json_and_xlsx_alike(shipped, tmp_path):
    as_of = ("--as-of", "2021-01-05")
    _, from_csv = read_csv(export(tmp_path, "csv", *as_of))
    from_json = read_json(export(tmp_path, "json", *as_of))
    _, from_xlsx, _ = read_xlsx(export(tmp_path, "xlsx", *as_of))

    for rows in (from_json, from_xlsx):
        assert [{column: as_text(row[column]) for column in DESIGN_COLUMNS} for row in rows] == from_csv
    assert without_names(from_csv) == hand_rows(AT_2021_01_05)


def test_scan_gaps_for_a_past_date_prints_the_hand_checked_gaps(shipped):
    out = StringIO()

    call_command("scan_gaps", "--as-of", "2021-01-05", stdout=out)

    assert Gap.objects.count() == 0
    printed = out.getvalue()
    for row in hand_rows(AT_2021_01_05):
        assert row["subject_code"] in printed
    for code in ("PRUM", "SIENA", "JIT", "CERT-EU", "CLASSIFIED-INFO"):  # secured: no gap
        assert code not in printed
