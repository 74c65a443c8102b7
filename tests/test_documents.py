"""Reports as documents that can leave the building (issue 13): the protective marking on every page,
the front matter and summary, tagged PDFs, the Excel summary sheet, the round briefing pack, and
large exports prepared in the background. Every file is opened with a real reader: csv, json,
openpyxl, pypdf, and pdftoppm for the briefing pack's pages."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pypdf
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from provisions.models import ExportJob, ExportState, Level, Marking, Provision
from provisions.permissions import Reader
from provisions.reports import catalogue
from provisions.reports.jobs import export_run
from provisions.services.exports import exports_purge
from provisions.services.provisions import provision_update
from provisions.services.tokens import api_token_create
from tests.factories import CapabilityFactory, DomainFactory, UserFactory

pytestmark = pytest.mark.django_db

ROUND = {"from": "2020-12-01", "to": "2021-01-01"}
AS_OF = "2021-01-01"
# At 1 January 2021 SP-LE-03 covers Europol membership in part: its gap names it.
SECRET_PROVISION = "SP-LE-03"


@pytest.fixture
def partnership(shipped_partnership_file: str) -> None:
    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())


@pytest.fixture
def secret_provision(partnership: None) -> Provision:
    provision = Provision.objects.get(reference=SECRET_PROVISION)
    return provision_update(
        provision=provision, by=Reader.system(), expected_version=None, marking=Marking.SECRET
    )


def analyst(client: Client, clearance: str) -> Client:
    client.force_login(
        UserFactory(role="analyst", clearance=clearance, first_name="Ada", last_name="Lovelace")
    )
    return client


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content


def pdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def plain(header: str | None) -> str:
    """An Excel header or footer without its control codes (&B: bold)."""
    return re.sub(r"&[A-Z]", "", header or "")


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def marking_lines(data: bytes) -> list[tuple[list[str], list[str]]]:
    """For each page, the text in its top and its bottom 20 mm (the margin boxes), as laid out."""
    out = []
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        height = float(page.mediabox.height)
        top: list[str] = []
        bottom: list[str] = []

        def visit(
            text: str, cm: Any, tm: Any, font: Any, size: Any, top=top, bottom=bottom, height=height
        ) -> None:
            y = tm[5] * cm[3] + cm[5] if cm else tm[5]
            if text.strip():
                (top if y > height - 57 else bottom if y < 57 else []).append(text.strip())

        page.extract_text(visitor_text=visit)
        out.append((top, bottom))
    return out


# --- the marking ------------------------------------------------------------------------------------------


def test_a_secret_readers_pdf_that_holds_a_secret_provision_says_secret_on_every_page(
    client, secret_provision
):
    response = analyst(client, "secret").get(f"/gaps/export.pdf?as_of={AS_OF}")
    data = body(response)
    assert response["X-Protective-Marking"] == "SECRET"
    assert SECRET_PROVISION in squeezed("".join(pdf_pages(data)))  # it is in there
    pages = marking_lines(data)
    assert len(pages) >= 3
    for number, (top, bottom) in enumerate(pages, start=1):
        assert "SECRET" in top, f"page {number} top: {top}"
        assert "SECRET" in bottom, f"page {number} bottom: {bottom}"
        assert f"Page {number} of {len(pages)}" in " ".join(bottom)


def test_an_official_readers_reports_never_mention_a_higher_marking(client, secret_provision):
    client = analyst(client, "official")
    for fmt in ("pdf", "xlsx", "csv", "json"):
        response = client.get(f"/gaps/export.{fmt}?as_of={AS_OF}")
        assert response.status_code == 200, fmt
        assert response["X-Protective-Marking"] == "OFFICIAL", fmt
        data = body(response)
        if fmt == "pdf":
            text = "\n".join(pdf_pages(data))
            assert all("OFFICIAL" in top and "OFFICIAL" in bottom for top, bottom in marking_lines(data))
        elif fmt == "xlsx":
            workbook = openpyxl.load_workbook(io.BytesIO(data))
            text = "\n".join(
                f"{sheet.oddHeader.center.text} {sheet.oddFooter.center.text} "
                + " ".join(str(cell.value) for row in sheet.iter_rows() for cell in row)
                for sheet in workbook.worksheets
            )
        else:
            text = data.decode("utf-8")
        assert "SECRET" not in text and SECRET_PROVISION not in text, fmt
    # The same reader, a coverage report and the changes of the round: OFFICIAL too.
    assert client.get("/coverage/export.pdf")["X-Protective-Marking"] == "OFFICIAL"
    assert (
        client.get("/changes/export.csv?from=2020-12-01&to=2021-01-01")["X-Protective-Marking"] == "OFFICIAL"
    )


def test_the_marking_is_the_highest_among_what_the_document_holds(client, secret_provision):
    provision_update(
        provision=Provision.objects.get(reference="SP-CJ-01"),
        by=Reader.system(),
        expected_version=None,
        marking=Marking.OFFICIAL_SENSITIVE,
    )
    sensitive = analyst(client, "official_sensitive")
    assert sensitive.get(f"/gaps/export.csv?as_of={AS_OF}")["X-Protective-Marking"] == "OFFICIAL-SENSITIVE"
    # Filtered to a domain whose gaps name neither provision, the document is OFFICIAL.
    filtered = sensitive.get(f"/gaps/export.json?as_of={AS_OF}&domain=foreign-policy")
    assert filtered["X-Protective-Marking"] == "OFFICIAL"
    secret = Client()
    analyst(secret, "secret")
    assert secret.get(f"/gaps/export.csv?as_of={AS_OF}")["X-Protective-Marking"] == "SECRET"
    assert (
        secret.get("/changes/export.json?from=2020-12-01&to=2021-01-01")["X-Protective-Marking"] == "SECRET"
    )
    # The aims scorecard names capabilities, never a provision.
    assert secret.get("/aims/export.pdf")["X-Protective-Marking"] == "OFFICIAL"


# --- PDF: front matter, summary, tagging ------------------------------------------------------------------


def test_a_pdf_opens_with_its_front_matter_and_a_summary_that_counts_its_rows(client, partnership):
    client = analyst(client, "secret")
    rows = list(
        csv.DictReader(
            io.StringIO(
                body(client.get(f"/gaps/export.csv?as_of={AS_OF}&severity=critical&severity=high")).decode(
                    "utf-8-sig"
                )
            )
        )
    )
    data = body(client.get(f"/gaps/export.pdf?as_of={AS_OF}&severity=critical&severity=high"))
    pages = pdf_pages(data)
    first = pages[0]
    for words in (
        "Gap report",
        "Partnership: UK–EU Security Partnership",
        "As of 1 January 2021 (a read-only evaluation)",
        "Filters: critical or high",
        "Produced by: Ada Lovelace (user",
        "Protective marking: OFFICIAL",
    ):
        assert words in first, words
    produced = re.search(r"Produced at: (\d+ \w+ \d{4}, \d\d:\d\d) \((GMT|BST)\)", first)
    assert produced, "the time it was produced, in London time"
    text = squeezed("\n".join(pages))
    severities = Counter(row["severity"] for row in rows)
    totals = [severities["critical"], severities["high"], 0, 0, len(rows)]
    assert "Total" + "".join(str(n) for n in totals) in text  # the summary's total line: the rows' counts
    by_domain = Counter(row["domain"] for row in rows)
    assert f"{len(rows)}gaps,mostseverefirst" in text
    assert "Lawenforcement:" + f"{by_domain['law-enforcement']}gap" in text  # grouped by domain
    assert "Capabilitiesbycoveragestate" in text  # the chart's numbers


def test_a_pdf_is_tagged_and_declares_its_language_and_title(client, partnership):
    data = body(analyst(client, "official").get("/coverage/export.pdf"))
    reader = pypdf.PdfReader(io.BytesIO(data))
    catalog = reader.trailer["/Root"]
    assert "/StructTreeRoot" in catalog  # a structure tree: the PDF is tagged
    assert bool(catalog["/MarkInfo"]["/Marked"])
    assert catalog["/Lang"] == "en-GB"
    assert reader.metadata.title.startswith("Coverage report: As of ")
    assert len(reader.pages) <= 2  # the front, summary and chart; then the two tables on one page


def test_a_long_table_repeats_its_header_and_numbers_every_page(client, partnership):
    domain = DomainFactory(code="long-domain", name="A long domain")
    for number in range(90):
        CapabilityFactory(domain=domain, code=f"LONG-{number:03d}", criticality=Level.HIGH, lapses_on=None)
    data = body(analyst(client, "official").get("/gaps/export.pdf?domain=long-domain"))
    pages = pdf_pages(data)
    rows_pages = [page for page in pages if "LONG-" in page]
    assert len(rows_pages) >= 3
    for page in rows_pages:
        assert "SeverityandkindSubject" in squeezed(page)  # the table's header, on every page it runs over
    assert all(f"Page {n} of {len(pages)}" in page for n, page in enumerate(pages, start=1))
    codes = [code for page in rows_pages for code in re.findall(r"LONG-\d{3}", page)]
    assert sorted(set(codes)) == [f"LONG-{n:03d}" for n in range(90)]  # every row, none cut in two pages
    # The structure tree (tagging) places each row's cells on the page that draws them.
    reader = pypdf.PdfReader(io.BytesIO(data))
    page_numbers = {page.indirect_reference.idnum: number for number, page in enumerate(reader.pages)}
    cell_pages = []

    def visit(element: Any) -> None:
        element = element.get_object()
        if not isinstance(element, pypdf.generic.DictionaryObject):
            return
        if element.get("/S") == "/TD" and "/Pg" in element:
            cell_pages.append(page_numbers[element.raw_get("/Pg").idnum])
        kids = element.get("/K")
        for kid in kids if isinstance(kids, list) else [kids] if kids is not None else []:
            visit(kid)

    visit(reader.trailer["/Root"]["/StructTreeRoot"])
    rows_page_numbers = [number for number, page in enumerate(pages) if "LONG-" in page]
    assert set(rows_page_numbers) <= set(cell_pages) <= set(range(len(pages)))
    assert cell_pages == sorted(cell_pages)  # in reading order, page after page


# --- Excel ------------------------------------------------------------------------------------------------


def test_excel_has_a_summary_sheet_first_and_the_marking_on_every_printed_page(client, secret_provision):
    data = body(analyst(client, "secret").get(f"/gaps/export.xlsx?as_of={AS_OF}"))
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == ["Summary", "Gaps"]
    for sheet in workbook.worksheets:
        assert plain(sheet.oddHeader.center.text) == "SECRET"
        assert plain(sheet.oddFooter.center.text) == "SECRET"
        assert "Page &P of &N" in sheet.oddFooter.right.text
    summary, gaps = workbook.worksheets
    assert summary["A1"].value == "SECRET" and summary["A2"].value == "Gap report"
    cells = [[cell.value for cell in row] for row in summary.iter_rows()]
    labels = {row[0]: row[1] for row in cells if row[0]}
    assert labels["Date"] == "As of 1 January 2021 (a read-only evaluation)"
    assert labels["Protective marking"] == "SECRET"

    header = [cell.value for cell in gaps[1]]
    rows = [dict(zip(header, (cell.value for cell in row), strict=True)) for row in gaps.iter_rows(min_row=2)]
    start = next(i for i, row in enumerate(cells) if row[0] == "Gaps by domain and severity")
    table = cells[start + 2 : start + 2 + 20]
    counted = {row[0]: row[1:6] for row in table if row[0]}
    by = Counter((row["domain"], row["severity"]) for row in rows)
    from provisions.models import Domain

    for code, name in Domain.objects.values_list("code", "name"):
        expected = [by[(code, level)] for level in ("critical", "high", "medium", "low")]
        if any(expected):
            assert counted[name] == [*expected, sum(expected)], name
    assert counted["Total"][-1] == len(rows)

    severity = header.index("severity") + 1
    critical = next(r for r in gaps.iter_rows(min_row=2) if r[severity - 1].value == "critical")
    assert critical[severity - 1].fill.fgColor.rgb.endswith("B10E1E")  # by fill as well as by word
    explanation = openpyxl.utils.get_column_letter(header.index("explanation") + 1)
    assert gaps.column_dimensions[explanation].width >= 40
    lapses = header.index("lapses_on")
    assert isinstance(rows[0]["lapses_on"], datetime.datetime) or rows[0]["lapses_on"] is None
    assert gaps.cell(row=2, column=lapses + 1).number_format == "yyyy-mm-dd"


# --- the round briefing pack ------------------------------------------------------------------------------


def test_the_briefing_pack_for_the_shipped_partnership_reads_as_a_document(partnership, tmp_path, settings):
    output = tmp_path / "briefing.pdf"
    out = io.StringIO()
    call_command(
        "export_briefing", "--from", ROUND["from"], "--to", ROUND["to"], "--output", str(output), stdout=out
    )
    assert "(OFFICIAL)" in out.getvalue()
    data = output.read_bytes()
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert "/StructTreeRoot" in reader.trailer["/Root"] and reader.trailer["/Root"]["/Lang"] == "en-GB"
    pages = pdf_pages(data)
    text = "\n".join(pages)
    assert pages[0].count("OFFICIAL") >= 3  # top, bottom, and the cover's own line
    assert "Round briefing pack" in pages[0] and "From 1 December 2020 to 1 January 2021" in pages[0]
    for section in (
        "2. The aims scorecard at 1 January 2021",
        "3. What changed since the previous round",
        "4. The critical and high gaps at 1 January 2021",
        "5. What lapses or expires in the next 180 days",
        "Annex A: status moves and their reasons",
        "Annex B: other changes recorded in the round",
    ):
        assert section in text, section
    for top, bottom in marking_lines(data):
        assert "OFFICIAL" in top and "OFFICIAL" in bottom
    from provisions.reports.changes import changes_report

    report = changes_report(
        start=datetime.date(2020, 12, 1), end=datetime.date(2021, 1, 1), reader=Reader.system()
    )
    moves = [event for event in report.events if event["kind"] == "status_change"]
    assert moves
    annex = squeezed(text[text.index("Annex A") :])
    for move in moves:
        assert squeezed(move["summary"]) in annex
        assert squeezed(move["note"])[:40] in annex  # the reason, beside the move

    # Its pages as images, as a reader would see them: artifacts/briefing-pack/, which CI keeps.
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm (poppler-utils) is needed: make system-packages installs it"
    folder = Path(settings.BASE_DIR) / "artifacts" / "briefing-pack"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(output, folder / "briefing-2020-12-01-2021-01-01.pdf")
    subprocess.run([pdftoppm, "-r", "80", "-png", str(output), str(folder / "page")], check=True)
    images = sorted(folder.glob("page-*.png"))
    assert len(images) == len(pages)
    assert all(image.stat().st_size > 5_000 for image in images)  # drawn pages, not blanks


def test_export_briefing_refuses_a_round_that_ends_before_it_starts(partnership, tmp_path):
    with pytest.raises(CommandError, match="must be before"):
        call_command(
            "export_briefing",
            "--from",
            "2021-01-01",
            "--to",
            "2020-12-01",
            "--output",
            str(tmp_path / "x.pdf"),
        )
    assert not (tmp_path / "x.pdf").exists()


def test_the_briefing_pack_is_offered_on_the_overview_and_the_changes_page(client, partnership):
    client = analyst(client, "official")
    assert 'action="/briefing.pdf"' in client.get("/").content.decode()
    assert (
        "/briefing.pdf?from=2020-12-01&amp;to=2021-01-01"
        in client.get("/changes/?from=2020-12-01&to=2021-01-01").content.decode()
    )
    response = client.get("/briefing.pdf?from=2020-12-01&to=2021-01-01")
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Protective-Marking"] == "OFFICIAL"
    assert 'filename="briefing-2020-12-01-2021-01-01.pdf"' in response["Content-Disposition"]
    assert body(response).startswith(b"%PDF")
    refused = client.get("/briefing.pdf?from=2021-01-01&to=2020-12-01")
    assert refused.status_code == 400 and b"must be before" in refused.content
    assert client.get("/briefing.csv?from=2020-12-01&to=2021-01-01").status_code == 404  # PDF only
    client.force_login(UserFactory(role="viewer"))
    assert client.get("/briefing.pdf").status_code == 403


def test_the_briefing_pack_through_the_api(client, secret_provision):
    user = UserFactory(role="analyst", clearance="secret")
    _, key = api_token_create(owner=user, by=Reader.of(user), name="briefing system")
    response = client.get(
        "/api/v1/briefing/?from=2020-12-01&to=2021-01-01",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_ACCEPT="application/pdf",
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["X-Protective-Marking"] == "SECRET"
    assert all("SECRET" in top for top, _ in marking_lines(response.content))
    wrong = client.get(
        "/api/v1/briefing/?from=nonsense", HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT="application/pdf"
    )
    assert wrong.status_code == 400 and wrong["Content-Type"].startswith("application/json")
    assert "from" in json.dumps(wrong.json())
    viewer = UserFactory(role="viewer")
    _, viewer_key = api_token_create(owner=viewer, by=Reader.of(viewer), name="viewer system")
    assert client.get("/api/v1/briefing/", HTTP_AUTHORIZATION=f"Bearer {viewer_key}").status_code == 403


# --- large exports in the background ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the job is queued when the request commits
def test_an_export_above_the_limit_is_prepared_in_the_background_and_downloaded(
    client, partnership, settings
):
    client = analyst(client, "official")
    streamed = client.get(f"/gaps/export.csv?as_of={AS_OF}")
    assert streamed.streaming  # a line at a time, whatever the rows
    assert streamed["Content-Disposition"] == 'attachment; filename="gaps-2021-01-01.csv"'
    online = body(streamed)
    settings.EXPORT_ONLINE_MAX_ROWS = 5
    response = client.get(f"/gaps/export.csv?as_of={AS_OF}", follow=True)
    ((job_url, status),) = response.redirect_chain
    assert status == 302 and job_url.startswith("/exports/")
    page = response.content.decode()
    assert "it is being prepared in the background" in page
    job = ExportJob.objects.get()
    assert job.state == ExportState.DONE  # tasks run in process here; tests/test_worker.py uses a real worker
    assert (job.rows, job.marking, job.file_name) == (29, "official", "gaps-2021-01-01.csv")
    assert "Download gaps-2021-01-01.csv" in page and 'http-equiv="refresh"' not in page
    download = client.get(f"/exports/{job.pk}/download")
    assert download["X-Protective-Marking"] == "OFFICIAL"
    assert body(download) == online  # the same file as built while waiting
    download.close()
    assert "gaps-2021-01-01.csv" in client.get("/exports/").content.decode()
    # Asked again, the same export is not made twice.
    client.get(f"/gaps/export.csv?as_of={AS_OF}")
    assert ExportJob.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the job is queued when the request commits
def test_a_background_export_is_only_for_who_asked_and_administrators(client, partnership, settings):
    settings.EXPORT_ONLINE_MAX_ROWS = 5
    owner = analyst(client, "official")
    owner.get(f"/gaps/export.csv?as_of={AS_OF}")
    job = ExportJob.objects.get()
    other = Client()
    analyst(other, "secret")
    assert other.get(f"/exports/{job.pk}/").status_code == 404
    assert other.get(f"/exports/{job.pk}/download").status_code == 404
    assert "gaps-2021-01-01" not in other.get("/exports/").content.decode()
    admin = Client()
    admin.force_login(UserFactory(role="administrator", clearance="secret"))
    download = admin.get(f"/exports/{job.pk}/download")
    assert download.status_code == 200 and body(download).decode("utf-8-sig").startswith("kind,severity,")
    download.close()
    assert job.user.get_username() in admin.get("/exports/").content.decode()


def test_a_waiting_export_page_refreshes_itself_until_told_not_to(client, partnership):
    client = analyst(client, "official")
    job = ExportJob.objects.create(
        user=UserFactory._meta.model.objects.get(first_name="Ada"),
        report="gaps",
        format="pdf",
        parameters={},
        description="Gap report as of today",
        rows=9000,
    )
    page = client.get(f"/exports/{job.pk}/").content.decode()
    assert '<meta http-equiv="refresh" content="3">' in page and "Stop checking" in page
    assert 'value="0"' in page  # the progress bar
    assert 'http-equiv="refresh"' not in client.get(f"/exports/{job.pk}/?refresh=off").content.decode()
    assert client.get(f"/exports/{job.pk}/download").status_code == 404  # not ready yet


def test_a_job_that_cannot_be_built_fails_with_the_reason(partnership):
    job = ExportJob.objects.create(
        user=UserFactory(role="analyst"),
        report="gaps",
        format="csv",
        parameters={"domain": ["no-such-domain"]},
        description="Gap report",
        rows=0,
    )
    export_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert job.state == ExportState.FAILED and "unknown domain 'no-such-domain'" in job.error
    assert not job.path.exists()


@pytest.mark.django_db(transaction=True)  # the job is queued when the request commits
def test_beat_removes_the_exports_whose_time_is_up(client, partnership, settings):
    settings.EXPORT_ONLINE_MAX_ROWS = 5
    analyst(client, "official").get(f"/gaps/export.xlsx?as_of={AS_OF}")
    job = ExportJob.objects.get()
    assert job.path.exists()
    assert exports_purge(now=timezone.now()) == 0  # still in time
    assert exports_purge(now=job.expires_at + datetime.timedelta(seconds=1)) == 1
    assert not job.path.exists() and not ExportJob.objects.exists()


@pytest.mark.django_db(transaction=True)  # the job is queued when the request commits
def test_a_pdf_is_limited_by_its_own_setting(client, partnership, settings):
    settings.EXPORT_ONLINE_MAX_PDF_ROWS = 10
    client = analyst(client, "official")
    assert client.get(f"/gaps/export.csv?as_of={AS_OF}").status_code == 200  # 29 rows: online
    response = client.get(f"/gaps/export.pdf?as_of={AS_OF}")
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.format == "pdf" and job.state == ExportState.DONE
    assert job.path.read_bytes().startswith(b"%PDF")
    assert (
        "(a PDF of more than 10 gaps is prepared in the background)" in client.get("/gaps/").content.decode()
    )


def test_a_job_says_how_far_it_has_got_while_it_writes():
    seen: list[int] = []
    rows = catalogue.CountedRows(list(range(2500)), seen.append, every=1000)
    assert list(rows) == list(range(2500)) and len(rows) == 2500
    assert seen == [1000, 2000]


@pytest.mark.django_db(transaction=True)
def test_an_export_is_downloaded_only_within_the_readers_clearance_today(client, secret_provision, settings):
    settings.EXPORT_ONLINE_MAX_ROWS = 5
    owner_client = analyst(client, "secret")
    owner_client.get(f"/gaps/export.csv?as_of={AS_OF}")
    job = ExportJob.objects.get()
    assert (job.state, job.marking) == (ExportState.DONE, "secret")
    # An administrator cleared below the file's marking neither sees nor downloads it.
    administrator = Client()
    administrator.force_login(UserFactory(role="administrator", clearance="official"))
    assert administrator.get(f"/exports/{job.pk}/download").status_code == 404
    assert "gaps-2021-01-01" not in administrator.get("/exports/").content.decode()
    # Nor does its owner once their clearance is lowered, or once they may no longer export.
    owner = job.user
    owner.clearance = "official"
    owner.save()
    assert owner_client.get(f"/exports/{job.pk}/download").status_code == 404
    owner.clearance = "secret"
    owner.save()
    owner.groups.set([])
    from django.contrib.auth.models import Group

    owner.groups.add(Group.objects.get(name="viewer"))
    assert owner_client.get(f"/exports/{job.pk}/download").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_asked_again_at_another_clearance_it_is_another_export(client, secret_provision, settings):
    settings.EXPORT_ONLINE_MAX_ROWS = 5
    client = analyst(client, "secret")
    client.get(f"/gaps/export.csv?as_of={AS_OF}")
    user = ExportJob.objects.get().user
    user.clearance = "official"
    user.save()
    client.get(f"/gaps/export.csv?as_of={AS_OF}")
    assert sorted(ExportJob.objects.values_list("clearance", "marking")) == [
        ("official", "official"),
        ("secret", "secret"),
    ]


def test_a_job_delivered_twice_runs_once(partnership):
    job = ExportJob.objects.create(
        user=UserFactory(role="analyst"),
        report="aims",
        format="csv",
        parameters={},
        clearance="official",
        description="Aims scorecard",
        rows=14,
    )
    first = export_run(job_id=str(job.pk))
    assert first is not None and first.state == ExportState.DONE
    written = job.path.read_bytes()
    assert export_run(job_id=str(job.pk)) is None  # already done: not claimed again
    assert job.path.read_bytes() == written
    assert not list(job.path.parent.glob(f"{job.pk}.*.partial"))


def test_beat_fails_a_job_whose_worker_died_and_sweeps_files_no_job_owns(partnership, settings):
    job = ExportJob.objects.create(
        user=UserFactory(role="analyst"),
        report="gaps",
        format="pdf",
        parameters={},
        clearance="official",
        description="Gap report",
        rows=9000,
        state=ExportState.RUNNING,
    )
    folder = Path(settings.EXPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    orphan = folder / "0b5e2f0e-0000-4000-8000-000000000000.csv"
    orphan.write_text("left by a deleted user")
    half_written = folder / f"{job.pk}.abc.partial"
    half_written.write_text("a worker killed mid-write")
    later = timezone.now() + datetime.timedelta(hours=1)
    for path in (orphan, half_written):
        os.utime(path, (later.timestamp() - 7200, later.timestamp() - 7200))
    exports_purge(now=later)
    job.refresh_from_db()
    assert job.state == ExportState.FAILED and "stopped before it finished" in job.error
    assert not orphan.exists()
    assert half_written.exists()  # its job still exists (failed, kept for its owner to read why)
    ExportJob.objects.all().delete()
    exports_purge(now=later)
    assert not half_written.exists()


def test_an_xlsx_jobs_progress_only_moves_forwards(partnership):
    from provisions.reports.gaps import gap_report

    seen: list[int] = []
    report = catalogue.with_progress(gap_report(reader=Reader.system()), seen.append)
    report.rows._every = 10  # the shipped partnership has 29 gaps today: report every 10
    catalogue.render("gaps", "xlsx", report, io.BytesIO())
    assert seen == sorted(seen) and len(seen) >= 4  # counted over every pass, never back to the start


def test_a_file_name_with_many_domains_counts_them(partnership):
    from provisions.models import Domain
    from provisions.reports.gaps import GapReportFilters

    codes = tuple(Domain.objects.values_list("code", flat=True))
    name = GapReportFilters(codes, ("critical", "high")).file_name("gaps", datetime.date(2021, 1, 1), "csv")
    assert name == f"gaps-{len(codes)}-domains-critical+high-2021-01-01.csv"
