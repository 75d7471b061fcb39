"""Prediction: which law to trust on a table, and how far to trust it.

Owns: the table's scale ladder and the candidate laws (`ladder`), back-tests on held-out scale
(`backtest`), the calibrated extrapolation-error model of an interval (`calibration`), the
recommendation that chooses, fits and calibrates a law (`recommend`: `recommend(table).predict`),
its group-wise form with a shared floor (`groups`), the seed noise floor (`seed_noise`) and the
points a user asks for on the command line (`requested_points`).

May import: `analysis.errors`, `analysis.result_types`, `analysis.inputs` and `analysis.laws`.
Never `analysis.report`.
"""
