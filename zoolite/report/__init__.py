"""The report stage: tables, plots, report.md/html and results.csv, from the results alone."""
