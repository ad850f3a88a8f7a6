"""What a map-kind room gives the sequencer (:class:`~.engine.Sequencer`).

The lookups of the keyed map kinds are woven into the sequencer's state machine: they share its
registers (the masked key, the scan counter ``i``, ``slot``, the result and errno registers),
the storage ports and the value writer. A room for one kind is therefore not a component with
ports but a class that adds that kind's logic and states to the sequencer's module. The
sequencer calls, in order:

* ``KindRoom(seq)``: signals and logic outside the state machine;
* :meth:`idle` inside ``IDLE`` and :meth:`reset` inside ``DECODE`` (sync statements clearing the
  room's registers for the next operation);
* :meth:`decode` inside ``DECODE``, under ``If`` the request's map is of one of :attr:`types`
  (after the checks every kind shares: CONFIG, no map, CLEAR, raw value access, NEXT and the
  program-side faults);
* :meth:`states` inside the state machine.

A room ends an operation in a state of the sequencer: ``RESULT`` (a lookup: ``o_found`` and
``slot`` set), ``RESPOND`` (``seq.fail(code)`` or nothing to write), or ``VALUE_SETUP`` (write
the request value, or zeros if ``v_zero``, at ``slot``, then go on as ``after_value`` says).
Replacing a lookup (a faster hash, an lpm trie) means another class with these methods.
"""

__all__ = ["KindRoom", "AV_DONE", "AV_TOUCH", "AV_SHIFT", "AV_CLEAR"]

#: What the sequencer's value writer goes on with (``seq.after_value``): respond, write the LRU
#: stamp (``TOUCH``), shift the key index after a removal (the hash room's ``SHIFT_START``), or
#: clear the map's key index and slots (``CLEAR``).
AV_DONE, AV_TOUCH, AV_SHIFT, AV_CLEAR = 0, 1, 2, 3


class KindRoom:
    """Base of the map-kind rooms: no logic, no states.

    Parameters
    ----------
    seq : :class:`~.engine.Sequencer`
        The sequencer the room adds to (its module is ``seq.m``).

    Members
    -------
    types : frozenset of abi.MapType
        The map types the room serves (those the build has: ``seq.types``).
    """

    types = frozenset()

    @classmethod
    def serves(cls, types):
        """A build with map ``types`` needs this room."""
        return bool(cls.types & types)

    def __init__(self, seq):
        self.seq = seq
        self.m = seq.m

    def idle(self):
        """Logic in state ``IDLE`` (every cycle the sequencer waits for a request)."""

    def reset(self):
        """Sync statements in state ``DECODE``: the room's registers for a new operation."""
        return []

    def decode(self):
        """The ``DECODE`` branch for a map of one of :attr:`types`."""
        raise NotImplementedError

    def states(self):
        """The room's states."""
