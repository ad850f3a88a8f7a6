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
"""

from .adapters import RxBytesToWords, TxWordsToBytes
from .layouts import (COUNTER_NAMES, CounterLayout, RunControlSignature, RxByte, RxWord,
                      SlotPortSignature, TxByte, TxWord)
from .top import Datapath

__all__ = ["Datapath", "RxBytesToWords", "TxWordsToBytes", "RxWord", "TxWord", "RxByte",
           "TxByte", "COUNTER_NAMES", "CounterLayout", "SlotPortSignature",
           "RunControlSignature"]
