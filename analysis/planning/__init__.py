"""Planning: the runs a sweep should add next (above `analysis.prediction`, below the report).

`propose` (propose.py) reads a table's fit points, asks the recommended law for its calibrated
interval at a target budget, lists candidate runs (candidates.py: repairs, seeds, extensions up
the ladder) and chooses those that narrow the interval most per FLOP within an allowance
(select.py, with the criterion of value.py). `python -m analysis.planning` prints the proposal;
`python -m sweeps.next` turns it into a sweep config and runs it (docs/planning.md).
"""
