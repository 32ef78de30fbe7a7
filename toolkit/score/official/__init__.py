"""Prediction scorers, one file per benchmark: each registers ``@PREDICTION_SCORERS.register("<benchmark>")``.

``PREDICTION_SCORERS`` imports every module in this package on its first lookup, so a new benchmark is one
new file here.  The interface is in :mod:`toolkit.score.predictions`.
"""
