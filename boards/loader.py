"""A program preloaded into the core at reset, until the control plane exists.

:class:`ProgramLoader` holds a program's 64-bit slots in a ROM and writes them through the
core's program port (``prog_we``/``prog_addr``/``prog_wdata``) once, one slot a cycle, after
reset. The written word passes through one opaque ``LUT4`` per bit (a buffer: ``INIT`` 0xAAAA,
Z = A): yosys treats the ECP5 cell as a black box, so it cannot fold the ROM's constant bits
into the program memory and prune the decoder and the CPU behind it. The board's figures are
then those of a core whose program memory a control plane writes with any program.
"""

from amaranth import Const, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

from bpfcore.hdl.unused import rejecting

__all__ = ["ProgramLoader", "PASS_PROGRAM"]

#: ``r0 = XDP_PASS; exit``: every frame leaves on the other port.
PASS_PROGRAM = (0x00000002_000000b7, 0x00000000_00000095)


class ProgramLoader(wiring.Component):
    """Write ``words`` into the program port after reset.

    Parameters
    ----------
    words : sequence of int
        The program's 64-bit slots (as the program port takes them), 1..``program_slots``.
    program_slots : int
        The core's program memory size (width of ``prog_addr``).
    opaque : bool
        Pass the written words through opaque ``LUT4`` cells (the board); False for simulation.

    Members
    -------
    prog_we, prog_addr, prog_wdata : Out
        To the core's program port.
    loaded : Out(1)
        Every slot is written.

    Raises
    ------
    ValueError
        No words, more words than slots, or a word out of 64-bit range.
    """

    def __init__(self, words, program_slots, *, opaque=True):
        words = list(words)
        with rejecting(self):
            if not 1 <= len(words) <= program_slots:
                raise ValueError(f"ProgramLoader: a program of 1..{program_slots} slots, not "
                                 f"{len(words)}")
            for word in words:
                if not isinstance(word, int) or not 0 <= word < 1 << 64:
                    raise ValueError(f"ProgramLoader: slot {word!r} is not a 64-bit word")
        self.words = words
        self.opaque = opaque
        super().__init__({
            "prog_we": Out(1),
            "prog_addr": Out(range(program_slots)),
            "prog_wdata": Out(64),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = memory.Memory(shape=64, depth=len(self.words), init=self.words)
        rp = rom.read_port(domain="comb")
        addr = Signal(range(len(self.words) + 1))
        m.d.comb += rp.addr.eq(addr)
        with m.If(addr != len(self.words)):
            m.d.sync += addr.eq(addr + 1)
        m.d.comb += [
            self.prog_we.eq(addr != len(self.words)),
            self.prog_addr.eq(addr),
            self.loaded.eq(addr == len(self.words)),
        ]
        if self.opaque:
            for bit in range(64):
                m.submodules[f"keep{bit}"] = Instance(
                    "LUT4", p_INIT=Const(0xAAAA, 16), i_A=rp.data[bit], i_B=Const(0),
                    i_C=Const(0), i_D=Const(0), o_Z=self.prog_wdata[bit])
        else:
            m.d.comb += self.prog_wdata.eq(rp.data)
        return m
