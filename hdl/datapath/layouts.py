"""Payloads and port signatures of the packet datapath.

Frames on the MAC side are streams of 64-bit words (``lib.stream``, sync domain), byte ``i`` of the
frame at bits ``8i .. 8i+7`` of its word (little-endian), ``count`` valid bytes (1..8) in each word:

==================  ==============================================================================
:data:`RxWord`      receive: ``data``, ``count``, ``last``; ``good`` is meaningful with ``last``
                    only: a frame whose last word has ``good`` low is bad (FCS, runt, oversize, rx
                    error, MAC FIFO overflow, already counted by the MAC) and is discarded.
:data:`TxWord`      transmit: ``data``, ``count``, ``last`` (the MAC pads to 60 bytes and adds
                    the FCS).
:data:`RxByte`      the MAC's receive byte stream today: ``data``, ``first``, ``last``, ``good``.
:data:`TxByte`      the MAC's transmit byte stream today: ``data``, ``first``, ``last``.
==================  ==============================================================================

Toward the XDP core the datapath has two ports, both signatures seen from the datapath (the
initiator); the core side uses ``.flip()``:

* :class:`SlotPortSignature`: one write and one registered read per cycle into the core's packet
  slots (zero copy: frames are written into a slot, the core runs on it, the transmitter reads it).
* :class:`RunControlSignature`: the core's run control (``start`` a slot, wait for ``done``, take
  the verdict, the packet bounds and the redirect target).

Inside the datapath, the queues carry :data:`RxDone` (receive -> dispatch) and :data:`TxJob`
(dispatch -> transmit); the counters are a :data:`CounterLayout` per ingress port.
"""

from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from ..helpers import RedirectKind
from ..layouts import SlotPortSignature

__all__ = ["RxWord", "TxWord", "RxByte", "TxByte", "COUNTER_NAMES", "CounterLayout", "Outcome",
           "SlotPortSignature", "RunControlSignature", "rx_done_layout", "tx_job_layout"]


RxWord = data.StructLayout({"data": 64, "count": 4, "last": 1, "good": 1})
TxWord = data.StructLayout({"data": 64, "count": 4, "last": 1})
RxByte = data.StructLayout({"data": 8, "first": 1, "last": 1, "good": 1})
TxByte = data.StructLayout({"data": 8, "first": 1, "last": 1})

#: Per-ingress-port counters, in the order of the invariant
#: ``received = pass + tx + redirect + drop + aborted + rejected + no_buffer``.
#:
#: * ``received``: every frame that ended on the receive stream, good or bad, including frames
#:   discarded for lack of a buffer;
#: * ``bytes_received``: the bytes of the frames handed to the core (good, 14..3520 bytes);
#: * ``pass``, ``tx``, ``redirect``: frames of this ingress port handed to a transmitter, by
#:   verdict;
#: * ``drop``: ``XDP_DROP``, and ``XDP_REDIRECT`` to no target or to an unknown ifindex;
#: * ``aborted``: ``XDP_ABORTED``, any other verdict, a fault, or packet bounds outside the slot;
#: * ``rejected``: bad frames (``good`` low), runts (< 14 bytes), frames longer than the XDP buffer;
#: * ``no_buffer``: frames that found no free slot at their first word.
COUNTER_NAMES = ("received", "bytes_received", "pass", "tx", "redirect", "drop", "aborted",
                 "rejected", "no_buffer")
CounterLayout = data.StructLayout({name: 32 for name in COUNTER_NAMES})


class Outcome(enum.Enum, shape=3):
    """What the dispatcher did with a frame the core ran (the counter it bumps)."""
    PASS = 0        #: handed to the other port's transmitter
    TX = 1          #: handed to the ingress port's transmitter
    REDIRECT = 2    #: handed to the transmitter of the redirect target
    DROP = 3        #: freed: ``XDP_DROP``, or a redirect to no target / an unknown ifindex
    ABORTED = 4     #: freed: ``XDP_ABORTED``, an unknown verdict, a fault, bounds outside the slot


def rx_done_layout(slots, ports):
    """A received frame queued for the core: its ``slot``, ingress ``port`` and ``length``."""
    return data.StructLayout({"slot": range(slots), "port": range(ports), "length": 16})


def tx_job_layout(slots, slot_bytes):
    """A frame queued for a transmitter: its ``slot`` and the bytes ``[start, end)`` in it."""
    return data.StructLayout({"slot": range(slots), "start": range(slot_bytes + 1),
                              "end": range(slot_bytes + 1)})


class RunControlSignature(wiring.Signature):
    """The core's run control, as the datapath drives it (an XdpCore with ``start_slot``).

    Parameters
    ----------
    slots : int
        Number of packet slots.

    Members
    -------
    start : Out(1)
        A one-cycle pulse, only while ``busy`` is low: run the program on ``start_slot``.
    start_slot : Out(range(slots))
        The slot the run uses (held while the core runs).
    data, data_end : Out(32)
        The packet bounds: ``abi.PKT_BASE + abi.PKT_HEADROOM`` and ``data + length``.
    ingress_ifindex : Out(32)
        Port 0 is ifindex 1, port 1 is ifindex 2.
    budget : Out(32)
        Instructions a run may retire (a constant of the build).
    busy : In(1)
        The core runs a program.
    done : In(1)
        Pulses once when the program ended; the results below then hold until the next start.
    result_r0 : In(64)
        The program's r0: the verdict is ``r0 & 0xffff_ffff``.
    result_fault : In(4)
        ``abi.Fault`` (0: none); any fault makes the verdict ``XDP_ABORTED``.
    result_data, result_data_end : In(32)
        The packet bounds the program left (``xdp_adjust_head``/``adjust_tail`` move them); the
        frame leaves with the bytes ``[result_data, result_data_end)``.
    redirect_kind : In(RedirectKind)
        The redirect target the run left (``NONE``, ``IFINDEX`` or ``DEVMAP``).
    redirect_ifindex : In(32)
        The ifindex of the redirect target.
    """

    def __init__(self, *, slots):
        self.slots = slots
        super().__init__({
            "start": Out(1), "start_slot": Out(range(slots)), "data": Out(32),
            "data_end": Out(32), "ingress_ifindex": Out(32), "budget": Out(32),
            "busy": In(1), "done": In(1), "result_r0": In(64), "result_fault": In(4),
            "result_data": In(32), "result_data_end": In(32),
            "redirect_kind": In(RedirectKind), "redirect_ifindex": In(32),
        })
