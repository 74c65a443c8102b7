"""Reports: one definition per report, rendered as CSV, JSON or XLSX by the same rows."""
