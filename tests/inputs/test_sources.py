"""pipeline.inputs.sources: the statuses of a pair's two reads joined into one."""

from __future__ import annotations

import dask.array as da
import numpy as np

from pipeline.inputs.files import TRANSIENT_SUFFIX, is_transient_status
from pipeline.inputs.sources import join_statuses


def test_joined_status_is_transient_only_when_every_failure_is():
    # A pair whose two reads failed, one for good and one transiently, fails for good:
    # a retry would meet the permanent failure again.
    retry = "chunk missing" + TRANSIENT_SUFFIX
    statuses = [
        da.from_array(np.array(texts, dtype=object), chunks=2)
        for texts in (["corrupt", "ok", retry, "ok"], [retry, retry, "ok", "ok"])
    ]
    joined = join_statuses(*statuses).compute().tolist()
    assert joined == [f"{retry}; corrupt", retry, retry, "ok"]
    assert [is_transient_status(text) for text in joined[:3]] == [False, True, True]
