"""Components that are built but never elaborated, said in one place.

Amaranth warns ("... was created but never used") when an ``Elaboratable`` is garbage-collected
without having been elaborated. In bpfcore some never are, on purpose:

* an instance whose constructor rejects its arguments (it raises before anyone can use it);
* a top built only to read its signature or its options (the Verilog wrapper's port list, the
  board build, the engines that plan map layouts);
* a sub-component created in a constructor and elaborated by its owner, when the owner itself is
  built only for its signature.

:func:`unelaborated` marks such objects and :func:`rejecting` wraps a constructor's checks. They
set Amaranth's private per-instance switch (``MustUse._MustUse__silence``), which has no public
spelling in Amaranth 0.5; keeping it here means one line to change if Amaranth grows one.
"""

from contextlib import contextmanager

__all__ = ["unelaborated", "rejecting"]


def unelaborated(*components):
    """Mark ``components`` as built but not (necessarily) elaborated: no warning when they are
    collected unused. Returns the first one, so ``top = unelaborated(Top())`` reads naturally."""
    for component in components:
        component._MustUse__silence = True
    return components[0] if components else None


@contextmanager
def rejecting(component):
    """Run a constructor's argument checks; when one raises ``ValueError`` or ``TypeError``, the
    half-built ``component`` is marked :func:`unelaborated` before the error goes on::

        def __init__(self, *, slots):
            with rejecting(self):
                if slots < 1:
                    raise ValueError(f"Thing: slots={slots!r} is invalid: expected >= 1")
            super().__init__(...)
    """
    try:
        yield component
    except (ValueError, TypeError):
        unelaborated(component)
        raise
