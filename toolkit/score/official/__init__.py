"""Prediction scorers, one file per benchmark: each registers ``@PREDICTION_SCORERS.register("<benchmark>")``.

Importing this package imports every module in it (:func:`toolkit.registry.import_submodules`), so
a new benchmark is one new file here.  The interface is in :mod:`toolkit.score.predictions`.
"""

from toolkit.registry import import_submodules

import_submodules(__name__)
