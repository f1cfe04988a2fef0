"""The feature bucket codes a waiting prediction keeps for error attribution: written as
text and read back as the same codes, batch after batch, including rows written in the
earlier comma-separated form and rows that hold none."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from driftwarden.monitor.windows.summary import decode_buckets, encode_buckets


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.int16,
        st.tuples(st.integers(1, 30), st.integers(0, 50)),
        elements=st.integers(-1, 32_767),
    )
)
def test_codes_read_back_as_written(codes: np.ndarray) -> None:
    text = encode_buckets(codes)
    assert text.len() == codes.shape[1]
    assert np.array_equal(decode_buckets(text, codes.shape[0]), codes.astype(np.int64))


def test_older_rows_and_rows_without_codes_read_as_codes_or_none() -> None:
    written = encode_buckets(np.array([[3, -1], [0, 11]], dtype=np.int16)).to_list()
    stored = pl.Series([*written, "4,7", None, "1,2,3", "zz"], dtype=pl.String)
    assert decode_buckets(stored, 2).tolist() == [[3, -1, 4, -1, -1, -1], [0, 11, 7, -1, -1, -1]]
