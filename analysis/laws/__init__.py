"""Laws: the fitted forms and their parameter intervals.

Owns: the robust log-space objective and its batched solver (`objective`), Chinchilla's approach 3
(`chinchilla`), approach 2 (`isoflop`, and `curve_slices` for slices read off constant-lr
curves), approach 1 (`envelope`), Kaplan's forms (`kaplan`, with `limiting_runs`: which runs each
is fitted to), variable projection and the over-training form (`varpro`), one irreducible loss
shared by groups (`shared_floor`), the bootstrap over runs (`bootstrap`), the flags of an
ill-determined fit (`identifiability`) and synthetic records from a known law (`synthetic`).

May import: numpy, scipy, pandas, `analysis.errors`, `analysis.result_types` and `analysis.inputs`.
Never `analysis.prediction` or `analysis.report`.
"""
