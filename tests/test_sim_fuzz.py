"""The golden VM (and the conformance plugin) against the Linux kernel, on random programs.

BPFCORE_SEED picks the programs (default fixed), BPFCORE_FUZZ_COUNT how many (default 2000).
A program the kernel rejects is a generator bug: the failure shows the verifier's log.
"""

import os
import random
import subprocess
import sys

import pytest

from bpfcore.sim.load import kernel
from bpfcore.sim.gen import progen
from bpfcore.sim.model import vm
from bpfcore.isa import AluOp
from bpfcore import plugin

from conftest import seed_from_env

AVAILABLE, WHY = kernel.kernel_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=WHY or "bpf() not available")

COUNT = int(os.environ.get("BPFCORE_FUZZ_COUNT", 2000))


def program_rng(seed, index):
    return random.Random(f"{seed}/{index}")


def kernel_program(seed, index):
    rng = program_rng(seed, index)
    return progen.generate(rng, size=rng.randint(5, 40), ctx=rng.random() < 0.75,
                           seed=f"{seed}/{index}")


def where(gp, seed, index):
    return (f"program {index} of BPFCORE_SEED={seed} (BPFCORE_FUZZ_COUNT >= {index + 1}):\n"
            f"{progen.listing(gp)}")


def compare(gp):
    """None if VM and kernel agree, else what differs."""
    got_vm = progen.run_vm(gp)
    got_kernel = progen.run_kernel(gp)
    if got_vm == got_kernel:
        return None
    return f"VM:     {got_vm}\nkernel: {got_kernel}"


def test_vm_matches_kernel(seed):
    failures = []
    for index in range(COUNT):
        gp = kernel_program(seed, index)
        try:
            difference = compare(gp)
        except kernel.KernelError as error:
            log = "\n".join(error.log.splitlines()[-30:])
            pytest.fail(f"the kernel rejected {where(gp, seed, index)}\n{error}\n{log}")
        if difference:
            failures.append(f"{difference}\n{where(gp, seed, index)}")
            if len(failures) >= 3:
                break
    assert not failures, f"{len(failures)} mismatch(es), first:\n{failures[0]}"


def test_the_comparison_catches_a_wrong_vm(monkeypatch):
    """Prove the check bites: a VM whose arsh is a logical shift must disagree somewhere."""
    monkeypatch.setitem(vm.ALU_OPS, AluOp.ARSH, lambda a, b, w, off: a >> (b & (w - 1)))
    seed = seed_from_env()
    caught = sum(compare(kernel_program(seed, index)) is not None for index in range(300))
    assert caught > 0


def plugin_program(seed, index):
    rng = program_rng(f"plugin{seed}", index)
    return progen.generate(rng, size=rng.randint(5, 40), ctx=False)


def hex_bytes(data):
    return " ".join(f"{b:02x}" for b in data)


def test_plugin_matches_kernel(seed):
    for index in range(300):
        gp = plugin_program(seed, index)
        expected = progen.run_kernel(gp).retval
        mem = random.Random(index).randbytes(index % 17)     # r1/r2 are not read: any memory
        argv = [hex_bytes(mem)] if mem else []
        code, out, err = plugin.run(argv, hex_bytes(gp.to_bytes()))
        assert (code, err) == (0, ""), where(gp, seed, index)
        assert int(out, 16) == expected, f"plugin {out.strip()} kernel {expected:x}\n" \
                                         f"{where(gp, seed, index)}"


def test_plugin_process_matches_kernel(seed):
    exe = os.path.join(os.path.dirname(sys.executable), "bpfcore-plugin")
    for index in range(3):
        gp = plugin_program(seed, 1000 + index)
        expected = progen.run_kernel(gp).retval
        done = subprocess.run([exe], input=hex_bytes(gp.to_bytes()), capture_output=True,
                              text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), where(gp, seed, index)
        assert int(done.stdout, 16) == expected, where(gp, seed, index)
