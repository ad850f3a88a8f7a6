"""The one way to build a component without elaborating it (bpfcore.hdl.unused)."""

import gc
import warnings

import pytest
from amaranth import Module
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from bpfcore.hdl.unused import rejecting, unelaborated


class Thing(wiring.Component):
    def __init__(self, slots, *, mark=True):
        if mark:
            with rejecting(self):
                if slots < 1:
                    raise ValueError(f"Thing: slots={slots!r} is invalid: expected >= 1")
        elif slots < 1:
            raise ValueError("unmarked")
        super().__init__({"a": In(1)})

    def elaborate(self, platform):
        return Module()


def _unused_warnings(make):
    # Amaranth stays silent until the process has elaborated something: elaborate one first.
    Fragment.get(Thing(1), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
        gc.collect()
    return [w for w in caught if "created but never used" in str(w.message)]


def _rejected(**kwargs):
    with pytest.raises(ValueError):
        Thing(0, **kwargs)


def test_a_rejected_instance_does_not_warn_and_an_unmarked_one_does():
    assert _unused_warnings(_rejected) == []
    # The check bites: without the mark Amaranth warns about the half-built instance.
    assert len(_unused_warnings(lambda: _rejected(mark=False))) == 1


def test_unelaborated_marks_every_argument_and_returns_the_first():
    def make():
        a, b = Thing(1), Thing(2)
        assert unelaborated(a, b) is a
    assert _unused_warnings(make) == []
    assert len(_unused_warnings(lambda: Thing(1))) == 1
