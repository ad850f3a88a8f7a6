"""RTL benches: Verilog generation, the HDL-clocked testbench wrapper, cocotb runners for Icarus
and Verilator, trace parsing, the lockstep checker, the Amaranth-simulator driver (``pysim``), the
map memory's host-port driver (``mapdrv``) and stream helpers for Amaranth testbenches.

The flow, for a batch of programs::

    verilog.generate(top)          Amaranth -> Verilog, cached under build/rtl/<name>-<hash>/
    tb.wrapper_verilog(top)        tb_top.v: clock in HDL, one $fwrite line per retired instruction
    runner.Bench.run(batch)        one simulator invocation runs every program of the batch
    trace.parse_log(path)          the log -> one TraceRun (records, cycles, result) per program
    lockstep.first_mismatch(vm, rtl)   first differing RetireRecord, with the disassembly around it

:mod:`bpfcore.sim.engines.rtl` joins these into the ``rtl`` run engine. Inside the simulator,
:mod:`bpfcore.sim.rtl.cocotb_bench` runs the batch with the reusable drivers of
:mod:`bpfcore.sim.rtl.drivers` (stream source/sink with valid/ready patterns, checked reads,
reset, the per-design bench classes).
"""
