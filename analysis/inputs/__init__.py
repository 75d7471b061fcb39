"""Inputs: everything a fit reads, checked, in canonical columns.

Owns: results tables in any format (`file_readers`: CSV, TSV, Parquet, JSON lines), their checks
(`table_validation`), the canonical table every fit takes (`canonical_table.load_table`), run
records of a results folder (`run_records.load_runs`), where a report's runs come from (`sources`:
a folder or a table), held-out splits (`holdout`), the schedules behind the runs (`schedules`) and
the published suites shipped with the package (`published_suites`).

May import: numpy, pandas, the standard library, `analysis.errors`, `analysis.result_types` and
`sweeps.records` (stdlib only). Never a law, a prediction or the report.
"""
