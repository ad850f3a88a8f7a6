"""The packet datapath: MAC word streams <-> packet slots <-> one XDP core (sync domain).

==================  ==========================================================================
``layouts``         stream payloads, the slot port and run-control signatures, the counters
``rx``              :class:`RxWriter`: one port's frames into free slots
``tx``              :class:`TxReader`: a slot's bytes (any alignment) out as one frame
``pool``            :class:`SlotPool`: the free list of slots
``dispatch``        :class:`Dispatcher`: runs slots on the core, routes the verdict
``counters``        :class:`Counters`: per-ingress-port frame counters
``arbiter``         :class:`RoundRobin`: shares the slot write and read ports
``adapters``        byte stream <-> word stream for today's MAC
``top``             :class:`Datapath`: the wiring
==================  ==========================================================================

Elaboration options of :class:`Datapath`:

================  =========================  =================================================
option            default                    meaning
================  =========================  =================================================
``ports``         2                          MAC ports (only 2: PASS leaves on the other one)
``slots``         4                          packet slots, 2..16
``slot_bytes``    4096                       bytes per slot (power of two, >= 1024)
``budget``        ``abi.DEFAULT_BUDGET``     instruction budget per packet, to the core
``inject_bug``    None                       ``"pass_same_port"``: a known bug, for the tests
================  =========================  =================================================

Rates (cycles of the core clock): a port alone is taken and sent at one 64-bit word per cycle,
at any packet alignment. The receivers share the slot write port and the transmitters the read
port round-robin, so with both ports busy each gets every other cycle (a receive word waits at
most one cycle): 4 bytes per cycle per port, 250 MB/s at 62.5 MHz against 125 MB/s of gigabit.
"""

from .adapters import RxBytesToWords, TxWordsToBytes
from .layouts import (COUNTER_NAMES, CounterLayout, RunControlSignature, RxByte, RxWord,
                      SlotPortSignature, TxByte, TxWord)
from .top import Datapath

__all__ = ["Datapath", "RxBytesToWords", "TxWordsToBytes", "RxWord", "TxWord", "RxByte",
           "TxByte", "COUNTER_NAMES", "CounterLayout", "SlotPortSignature",
           "RunControlSignature"]
