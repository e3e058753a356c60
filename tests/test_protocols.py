"""Protocol splits (the contract of issue 2)."""

from __future__ import annotations

import pytest

from recon.errors import ReconError
from recon.eval.protocols import dtu_split, llff_split


def test_dtu_split_matches_regnerf():
    s = dtu_split(3)
    assert s.train == [25, 22, 28]
    assert len(s.test) == 25
    assert not set(s.test) & {3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39, 25, 22, 28, 40, 44, 48, 0, 8, 13}
    assert dtu_split(9).train == [25, 22, 28, 40, 44, 48, 0, 8, 13]
    assert dtu_split(9).test == s.test
    with pytest.raises(ReconError):
        dtu_split(10)


def test_llff_split_every_eighth_and_even_spacing():
    s = llff_split(3, total=20)
    assert s.test == [0, 8, 16]
    rest = [i for i in range(20) if i not in s.test]
    assert s.train == [rest[0], rest[8], rest[16]] == [1, 10, 19]
    assert not set(s.train) & set(s.test)
