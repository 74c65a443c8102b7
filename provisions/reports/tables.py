"""Writing a report's rows (dicts keyed by its columns) as CSV, JSON, XLSX or PDF: the part every
report shares. What goes in the rows is each report's own (gaps.py, coverage.py)."""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import xlsxwriter
from django.template.loader import render_to_string

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


def write_csv(columns: Sequence[str], rows: Sequence[Row], output: io.TextIOBase | Any) -> None:
    """CSV for UTF-8 output. It starts with a byte-order mark: without one, Excel reads UTF-8 as the
    local code page ("Prüm" becomes "PrÃ¼m"); csv readers and LibreOffice skip it."""
    output.write("\ufeff")
    writer = csv.writer(output)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                _neutralised(value) if isinstance(value, str) else _text(value)
                for value in (row[c] for c in columns)
            ]
        )


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


def write_xlsx(columns: Sequence[str], rows: Sequence[Row], output: BinaryIO, *, sheet_name: str) -> None:
    """One sheet: a bold, frozen header with filters, then typed cells (dates, numbers, text)."""
    # strings_to_formulas off: names and explanations are user text, never formulas.
    workbook = xlsxwriter.Workbook(
        output, {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    sheet = workbook.add_worksheet(sheet_name)
    bold = workbook.add_format({"bold": True})
    dates = workbook.add_format({"num_format": "yyyy-mm-dd"})
    datetimes = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write_row(0, 0, columns, bold)
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
            else:
                sheet.write_string(row_number, column_number, value)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(rows), 1), len(columns) - 1)
    workbook.close()


def write_pdf(template: str, context: dict[str, Any], output: BinaryIO) -> None:
    """A printable A4 landscape document from a template under templates/reports/ (WeasyPrint)."""
    import weasyprint  # imported here: it loads Pango, which only PDF rendering needs

    weasyprint.HTML(string=render_to_string(template, context)).write_pdf(output)
