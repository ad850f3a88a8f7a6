"""Parse the wrapper's event log (see :mod:`bpfcore.sim.rtl.tb`) into one run per program.

A record line carries the raw ``RetireLayout`` vector; :func:`decode_record` cuts it into the
fields of :class:`bpfcore.abi.RetireRecord` using the layout's own offsets, so the parser follows
the layout without a second field table.
"""

from dataclasses import dataclass, field
from typing import Optional

from bpfcore.abi import Fault, RetireRecord
from bpfcore.errors import BpfcoreError
from bpfcore.hdl.layouts import PrintkLayout

__all__ = ["PrintkText", "TraceRun", "decode_record", "record_line", "parse_log", "cpi"]

# RetireLayout field -> (RetireRecord field, the valid bit that turns it into None when 0).
_OPTIONAL = {"rd": "rd_valid", "helper_id": "helper_valid", "ret": "ret_valid"}
_VALID_BITS = set(_OPTIONAL.values())


@dataclass
class PrintkText:
    """``trace_printk`` messages put together from the transfers of a ``printk`` stream
    (:data:`bpfcore.hdl.layouts.PrintkLayout`).

    Members
    -------
    messages : list of str
        Complete messages (latin-1), as the VM's ``XdpEnv.log``.
    pending : bytearray
        Bytes of a message whose end has not come (empty after a complete run).
    """
    messages: list = field(default_factory=list)
    pending: bytearray = field(default_factory=bytearray)

    def take(self, data, end):
        """One transfer: a text byte ``data``, or the end of a message."""
        if end:
            self.messages.append(self.pending.decode("latin-1"))
            self.pending = bytearray()
        else:
            self.pending.append(data)


@dataclass
class TraceRun:
    """What the RTL did for one batch item.

    Members
    -------
    index : int
        Batch item index (as logged with the start pulse).
    start_cycle : int
        Cycle at which ``start`` was sampled.
    records : list of (int, RetireRecord)
        Retired instructions with the cycle each retired in.
    end : tuple or None
        ``(cycle, r0, fault, pc)`` from the ``done`` pulse, None if it never came.
    printk : PrintkText
        What the ``printk`` stream carried during the run.
    """
    index: int
    start_cycle: int
    records: list = field(default_factory=list)
    end: Optional[tuple] = None
    printk: PrintkText = field(default_factory=PrintkText)

    def add_printk(self, value):
        """Take one ``printk`` transfer (the ``PrintkLayout`` vector as an int)."""
        self.printk.take(value >> PrintkLayout["data"].offset & 0xff,
                         value >> PrintkLayout["end"].offset & 1)

    @property
    def cycles(self):
        """Cycles from the start pulse to the done pulse (None without a done pulse)."""
        return None if self.end is None else self.end[0] - self.start_cycle

    @property
    def first_retire_cycle(self):
        return self.records[0][0] - self.start_cycle if self.records else None

    @property
    def last_retire_cycle(self):
        return self.records[-1][0] - self.start_cycle if self.records else None


def cpi(run):
    """CPI = (cycle of last retirement - cycle of first) / (retired - 1); None below 2 records."""
    if len(run.records) < 2:
        return None
    return (run.records[-1][0] - run.records[0][0]) / (len(run.records) - 1)


def decode_record(value, layout):
    """The :class:`RetireRecord` packed in integer ``value`` laid out as ``layout``."""
    raw = {}
    for name, fld in layout:
        raw[name] = (value >> fld.offset) & ((1 << fld.width) - 1)
    kwargs = {}
    for name, bits in raw.items():
        if name in _VALID_BITS:
            continue
        if name in _OPTIONAL:
            kwargs[name] = bits if raw.get(_OPTIONAL[name], 1) else None
        elif name == "fault":
            try:
                kwargs[name] = Fault(bits)
            except ValueError:
                kwargs[name] = bits
        else:
            kwargs[name] = bits
    return RetireRecord(**kwargs)


def record_line(cycle, vector, layout):
    """``(cycle, RetireRecord)`` of an ``R`` line's fields; ``ValueError`` on X/Z bits."""
    if "x" in vector.lower() or "z" in vector.lower():
        raise ValueError(f"undefined bits in the record {vector}")
    return int(cycle), decode_record(int(vector, 16), layout)


def parse_log(path, layout):
    """``[TraceRun]`` in log order. Raises :class:`BpfcoreError` on a malformed line."""
    runs = []
    with open(path) as log:
        for number, line in enumerate(log, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                tag = parts[0]
                if tag == "S":
                    runs.append(TraceRun(int(parts[1]), int(parts[2])))
                    continue
                if not runs:
                    raise ValueError("event before the first start")
                if tag == "R":
                    runs[-1].records.append(record_line(parts[1], parts[2], layout))
                elif tag == "P":
                    runs[-1].add_printk(int(parts[2], 16))
                elif tag == "D":
                    runs[-1].end = (int(parts[1]), int(parts[2], 16), int(parts[3], 16),
                                    int(parts[4], 16))
                else:
                    raise ValueError(f"unknown event {tag!r}")
            except (ValueError, IndexError) as error:
                raise BpfcoreError(f"{path}:{number}: bad trace line {line.strip()!r}: "
                                   f"{error}") from None
    return runs
