"""Writing a report's rows (dicts keyed by its columns) as CSV, JSON, XLSX or PDF: the part every
report shares. What goes in the rows is each report's own (gaps.py, coverage.py); the document
around them (marking, front matter, summary) is provisions.reports.document's `Front`."""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import xlsxwriter
from django.template.loader import render_to_string

from provisions.collector import collector_paused

if TYPE_CHECKING:
    from provisions.reports.document import Front

Row = Mapping[str, Any]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _neutralised(value: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ as a formula; user text must stay text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class _Line:
    """What csv.writer writes to: it hands each line back (writerow returns what write returns)."""

    def write(self, line: str) -> str:
        return line


def csv_lines(columns: Sequence[str], rows: Iterable[Row]) -> Iterator[str]:
    """CSV, one line at a time (a download streams them: memory stays flat whatever the rows). It
    starts with a byte-order mark: without one, Excel reads UTF-8 as the local code page ("Prüm"
    becomes "PrÃ¼m"); csv readers and LibreOffice skip it."""
    writer = csv.writer(_Line())
    yield "\ufeff"
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow(
            [
                _neutralised(value) if isinstance(value, str) else _text(value)
                for value in (row[c] for c in columns)
            ]
        )


def write_csv(columns: Sequence[str], rows: Iterable[Row], output: io.TextIOBase | Any) -> None:
    """CSV for UTF-8 output, written row by row (csv_lines)."""
    for line in csv_lines(columns, rows):
        output.write(line)


def write_json(columns: Sequence[str], rows: Sequence[Row], output: io.TextIOBase | Any) -> None:
    """A list of objects with the columns as keys; dates as ISO 8601 text."""
    listed = [
        {
            column: _text(row[column]) if isinstance(row[column], datetime.date) else row[column]
            for column in columns
        }
        for row in rows
    ]
    json.dump(listed, output, indent=2, ensure_ascii=False)
    output.write("\n")


# Severity by fill as well as by word (the words stay the codes, as in CSV): dark fills take white text.
SEVERITY_FILLS = {
    "critical": ("#B10E1E", "#FFFFFF"),
    "high": ("#F47738", "#000000"),
    "medium": ("#FFDD00", "#000000"),
    "low": ("#DEE0E2", "#000000"),
}
_WIDEST_COLUMN = 60  # characters; longer text wraps


def _header_text(text: str) -> str:
    """Text for an Excel header or footer, where & starts a control code."""
    return text.replace("&", "&&")


def write_xlsx(
    columns: Sequence[str],
    rows: Sequence[Row],
    output: BinaryIO,
    *,
    sheet_name: str,
    front: Front | None = None,
) -> None:
    """With a `front`: a summary sheet (marking, front matter, summary tables) and then the rows
    sheet, both with the marking in the page header and footer. The rows sheet: a bold, frozen
    header with filters, typed cells (dates as dates, numbers, text), columns as wide as their
    text, severity by fill and word."""
    # strings_to_formulas off: names and explanations are user text, never formulas.
    workbook = xlsxwriter.Workbook(
        output, {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    bold = workbook.add_format({"bold": True})
    if front is not None:
        _summary_sheet(workbook, front, bold)
    sheet = workbook.add_worksheet(sheet_name)
    if front is not None:
        _mark_pages(sheet, front, sheet_name)
    dates = workbook.add_format({"num_format": "yyyy-mm-dd"})
    datetimes = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    wrapped = workbook.add_format({"text_wrap": True, "valign": "top"})
    severities = {
        level: workbook.add_format({"bg_color": fill, "font_color": ink, "bold": level == "critical"})
        for level, (fill, ink) in SEVERITY_FILLS.items()
    }
    widths = _widths(columns, rows)
    for index, width in enumerate(widths):
        sheet.set_column(index, index, width, wrapped if width >= _WIDEST_COLUMN else None)
    sheet.write_row(0, 0, columns, bold)
    severity_columns = {"severity", "previous_severity"}
    for row_number, row in enumerate(rows, start=1):
        for column_number, column in enumerate(columns):
            value = row[column]
            if value is None:
                continue
            if isinstance(value, datetime.datetime):
                sheet.write_datetime(row_number, column_number, value.replace(tzinfo=None), datetimes)
            elif isinstance(value, datetime.date):
                sheet.write_datetime(row_number, column_number, value, dates)
            elif isinstance(value, int | float):
                sheet.write_number(row_number, column_number, value)
            elif column in severity_columns and value in severities:
                sheet.write_string(row_number, column_number, value, severities[value])
            else:
                sheet.write_string(row_number, column_number, value)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(rows), 1), len(columns) - 1)
    workbook.close()


def _widths(columns: Sequence[str], rows: Sequence[Row]) -> list[int]:
    """Each column as wide as its longest text (dates 10, date-times 19), within 8 to 60 characters."""

    def width(value: Any) -> int:
        if isinstance(value, datetime.datetime):
            return 19
        if isinstance(value, datetime.date):
            return 10
        return len(_text(value))

    widest = {column: len(column) for column in columns}
    for row in rows:
        for column in columns:
            widest[column] = max(widest[column], width(row[column]))
    return [min(max(widest[column] + 2, 8), _WIDEST_COLUMN) for column in columns]


def _mark_pages(sheet: Any, front: Front, name: str) -> None:
    """The marking at the top and bottom of every printed page, with the title and page numbers."""
    marking = _header_text(front.marking_words)
    sheet.set_header(f"&C&B{marking}")
    sheet.set_footer(f"&L{_header_text(front.title)}: {_header_text(name)}&C&B{marking}&RPage &P of &N")
    sheet.set_landscape()
    sheet.set_paper(9)  # A4
    sheet.repeat_rows(0)
    sheet.fit_to_pages(1, 0)


def _summary_sheet(workbook: Any, front: Front, bold: Any) -> None:
    """The first sheet: the marking, the title, the front matter, then each summary table."""
    sheet = workbook.add_worksheet("Summary")
    _mark_pages(sheet, front, "Summary")
    marking = workbook.add_format({"bold": True, "font_size": 14, "font_color": "#B10E1E"})
    title = workbook.add_format({"bold": True, "font_size": 16})
    heading = workbook.add_format({"bold": True, "font_size": 12})
    header = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "bottom": 1})
    total = workbook.add_format({"bold": True, "top": 1})
    sheet.set_column(0, 0, 34)
    sheet.set_column(1, 8, 16)
    sheet.write_string(0, 0, front.marking_words, marking)
    sheet.write_string(1, 0, front.title, title)
    row = 3
    for name, value in front.lines:
        sheet.write_string(row, 0, name, bold)
        sheet.write_string(row, 1, value)
        row += 1
    for table in front.summary:
        row += 1
        sheet.write_string(row, 0, table.title, heading)
        row += 1
        sheet.write_row(row, 0, table.header, header)
        for line in table.rows:
            row += 1
            style = total if line[0] == "Total" else None
            for column, value in enumerate(line):
                if isinstance(value, int | float):
                    sheet.write_number(row, column, value, style)
                else:
                    sheet.write_string(row, column, str(value), style)
        row += 1


def write_pdf(template: str, front: Front, context: dict[str, Any], output: BinaryIO) -> None:
    """An A4 landscape document from a template under templates/reports/ (WeasyPrint): the marking
    at the top and bottom of every page, the front matter and summary first, page x of y. Tagged
    (PDF/UA-1: a structure tree, the document's language and title) for screen readers."""
    import weasyprint  # imported here: it loads Pango, which only PDF rendering needs

    _page_references_built_once()
    html = render_to_string(template, {**context, "front": front})
    with collector_paused():
        weasyprint.HTML(string=html).write_pdf(output, pdf_variant="pdf/ua-1")


def _page_references_built_once() -> None:
    """pydyf 0.13's `PDF.page_references` builds the tuple of every page's reference each time it
    is read, and WeasyPrint 70's tagging (PDF/UA) reads it once per tagged box: writing a tagged
    document grew with rows times pages (a third of a 5,000-row PDF's time went there). The same
    values, built once per page count. Remove when pydyf caches them itself."""
    import pydyf

    if getattr(pydyf.PDF.page_references.fget, "built_once", False):
        return

    def page_references(pdf: Any) -> tuple[bytes, ...]:
        kids = pdf.pages["Kids"]
        count, references = pdf.__dict__.get("_page_references", (-1, ()))
        if count != len(kids):
            references = tuple(f"{number} 0 R".encode("ascii") for number in kids[::3])
            pdf.__dict__["_page_references"] = (len(kids), references)
        return references

    page_references.built_once = True  # type: ignore[attr-defined]
    pydyf.PDF.page_references = property(page_references)


def by_domain(rows: Iterable[Row], domains: Sequence[tuple[str, str]]) -> list[tuple[str, list[Row]]]:
    """Rows grouped under their domain's name, in the partnership's order of domains (each group
    keeps the rows' order); a domain with no rows is left out."""
    groups: dict[str, list[Row]] = {code: [] for code, _ in domains}
    for row in rows:
        groups.setdefault(row["domain"], []).append(row)
    names = dict(domains)
    return [(names.get(code, code), grouped) for code, grouped in groups.items() if grouped]
