"""juno.util.notebook's reading of an owned value: whether it failed, from its header alone."""
from juno.util.notebook import _value_failed


def test_value_failed_reads_the_header_only():  # moved from test_widgets.py with the code it tests
    from juno.owner import serialization

    ok = serialization.serialize(41).to_bytes()
    bad = serialization.serialize(ValueError("x"), error=True).to_bytes()
    assert not _value_failed(("v", ok))
    assert _value_failed(("v", bad))
    assert _value_failed(("e", ValueError("lost")))
    assert not _value_failed(("s", "node-id"))
