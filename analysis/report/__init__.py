"""Report: what a user reads and looks at.

Owns: the report of a results folder or table (`build.build_report`), its calibrated prediction
(`calibrated_prediction`), the warnings under its headline (`headline_checks`), the figures
(`plots`: one `plot_*` per figure, each returning its Axes; `figure_set`: which figures a report
gets, saved as PNG and SVG), the files runs.csv, fits.json and report.md (`files`), the text
`python -m analysis` prints (`printed_summary`), several sweeps side by side (`comparison`) and
the summary run in a tracker (`tracker_summary`).

May import every other room of `analysis/`; nothing below it imports the report.
"""
