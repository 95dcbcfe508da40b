"""The test helpers themselves: an assertion that cannot fail proves nothing."""
from __future__ import annotations

import pytest

import tests.helpers as helpers_module
from tests.helpers import assert_unique_boot_seq, top_level_imports


def test_unique_boot_seq_accepts_repeats_of_one_event() -> None:
    assert_unique_boot_seq([{"boot": 1, "seq": 5, "jti": "a"}, {"boot": 1, "seq": 5, "jti": "a"},
                            {"boot": 2, "seq": 5, "jti": "b"}])


def test_unique_boot_seq_rejects_two_events_under_one_pair() -> None:
    with pytest.raises(AssertionError, match="boot=1 seq=5"):
        assert_unique_boot_seq([{"boot": 1, "seq": 5, "jti": "a", "type": "sos.pressed"},
                                {"boot": 1, "seq": 5, "jti": "b", "type": "sos.pressed"}])


def test_top_level_imports_sees_function_level_imports_too() -> None:
    found = top_level_imports(helpers_module)
    assert {"ast", "os", "subprocess", "pathlib", "typing"} <= found
    assert "pytest" in found            # imported inside a function of tests/helpers.py
    assert "hypothesis" not in found    # only what the module itself imports
