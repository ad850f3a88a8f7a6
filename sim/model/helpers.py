"""XDP helper functions for the golden VM, with the Linux kernel's results.

:class:`XdpEnv` is the state the helpers share with the caller: the maps, the clock behind
``ktime_get_ns``, the seeded generator behind ``get_prandom_u32``, the processor id, the
``trace_printk`` log, and the redirect target a run leaves behind. :meth:`XdpEnv.helpers` gives
the ``{id: fn}`` dict that :class:`~bpfcore.sim.model.vm.Vm` takes.

Every pointer argument is read or written through ``vm.mem``, so a bad pointer stops the program
with ``Fault.HELPER`` (the VM turns a :class:`~bpfcore.sim.model.vm.VmFault` raised inside a helper into
that fault). A map argument must be a map handle, ``MAP_BASE + i * MAP_WINDOW``.

Kernel reference: ``net/core/filter.c`` (xdp_adjust_head/tail, redirect, redirect_map,
csum_diff), ``kernel/bpf/helpers.c`` (map helpers, ktime, prandom, trace_printk formats),
``kernel/bpf/core.c`` (tail calls, ``MAX_TAIL_CALL_CNT``).
"""

import re

from bpfcore import abi
from bpfcore.abi import (BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, ETH_HLEN, KERNEL_FRAME_LIMIT,
                         MAX_TAIL_CALL_CNT, XDP_FRAME_SIZE, Errno, Helper, XdpAction)
from bpfcore.sim.model.maps import DevMap, ProgArrayMap
from bpfcore.sim.model.vm import HelperFault, u64

__all__ = ["XdpEnv", "XorShift32", "csum_diff", "XDP_HELPERS"]

#: Helper ids an XDP program may call on this platform.
XDP_HELPERS = frozenset(int(h) for h in Helper)


class XorShift32:
    """The ``get_prandom_u32`` generator: Marsaglia xorshift32 (13, 17, 5), state never 0."""

    def __init__(self, seed=1):
        self.seed(seed)

    def seed(self, seed):
        self.state = (seed & 0xffff_ffff) or 0x2545_f491

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xffff_ffff
        x ^= x >> 17
        x ^= (x << 5) & 0xffff_ffff
        self.state = x
        return x


def _add32(a, b):
    s = (a & 0xffff_ffff) + (b & 0xffff_ffff)
    return (s & 0xffff_ffff) + (s >> 32)


def _csum_partial(data, seed):
    total = seed & 0xffff_ffff
    for i in range(0, len(data), 4):
        total = _add32(total, int.from_bytes(data[i:i + 4], "little"))
    return total & 0xffff_ffff


def _from32to16(x):
    x = (x & 0xffff) + (x >> 16)
    x = (x & 0xffff) + (x >> 16)
    return x & 0xffff


def csum_diff(from_bytes, to_bytes, seed):
    """``bpf_csum_diff`` as Linux 6.12+ computes it: a 16-bit ones'-complement result.

    ``from`` is subtracted from and ``to`` added to ``seed``; sizes are multiples of 4 (checked
    by the caller). Words are read in host (little-endian) order, as the kernel does.
    """
    ret = seed & 0xffff_ffff
    if from_bytes and to_bytes:
        to_sum = _csum_partial(to_bytes, ret)
        from_sum = _csum_partial(from_bytes, 0)
        ret = _add32(to_sum, ~from_sum & 0xffff_ffff) & 0xffff_ffff
    elif to_bytes:
        ret = _csum_partial(to_bytes, ret)
    elif from_bytes:
        ret = ~_csum_partial(from_bytes, ~ret & 0xffff_ffff) & 0xffff_ffff
    return _from32to16(ret)


_FORMAT = re.compile(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?(ll|l|h|hh|z)?([diuxXcsp%])?")


class XdpEnv:
    """State shared between the XDP helpers and whoever runs the program.

    Parameters
    ----------
    maps : sequence of Map
        The program's maps, in map-index order (the VM's ``maps``).
    seed : int
        Seed of the ``get_prandom_u32`` generator.
    clock : int or callable
        ``ktime_get_ns`` value: a number, or a function of no arguments returning one.
    cpu : int
        ``get_smp_processor_id`` result.
    frame_limit : int
        Bytes from the start of the packet buffer that ``data_end`` may reach
        (default: the kernel's test-run buffer, so both engines agree).

    Members
    -------
    log : list of str
        ``trace_printk`` output, one string per call.
    redirect : tuple or None
        After a run that returned ``XDP_REDIRECT``: ``("ifindex", n)`` or ``("devmap", map
        index, slot, ifindex)``.
    tail_calls : int
        Tail calls taken in the current run.
    """

    def __init__(self, maps=(), *, seed=1, clock=0, cpu=0, frame_limit=KERNEL_FRAME_LIMIT):
        self.maps = list(maps)
        self.prandom = XorShift32(seed)
        self.clock = clock
        self.cpu = cpu
        self.frame_limit = min(frame_limit, abi.PKT_BUF_SIZE)
        self.log = []
        self.redirect = None
        self.tail_calls = 0

    def start_run(self):
        """Reset the per-packet state (redirect target, tail-call count)."""
        self.redirect = None
        self.tail_calls = 0

    def helpers(self):
        """The ``{helper id: fn(vm, r1..r5)}`` dict for :class:`~bpfcore.sim.model.vm.Vm`."""
        return {
            Helper.MAP_LOOKUP_ELEM: self.map_lookup_elem,
            Helper.MAP_UPDATE_ELEM: self.map_update_elem,
            Helper.MAP_DELETE_ELEM: self.map_delete_elem,
            Helper.KTIME_GET_NS: self.ktime_get_ns,
            Helper.TRACE_PRINTK: self.trace_printk,
            Helper.GET_PRANDOM_U32: self.get_prandom_u32,
            Helper.GET_SMP_PROCESSOR_ID: self.get_smp_processor_id,
            Helper.TAIL_CALL: self.tail_call,
            Helper.REDIRECT: self.redirect_ifindex,
            Helper.CSUM_DIFF: self.csum_diff,
            Helper.XDP_ADJUST_HEAD: self.xdp_adjust_head,
            Helper.REDIRECT_MAP: self.redirect_map,
            Helper.XDP_ADJUST_TAIL: self.xdp_adjust_tail,
        }

    # --- arguments ----------------------------------------------------------------------------

    def _map(self, handle, what):
        offset = handle - abi.MAP_BASE
        index, rest = divmod(offset, abi.MAP_WINDOW)
        if offset < 0 or rest or not index < len(self.maps):
            raise HelperFault(f"{what}: r1 = {handle:#x} is not a map")
        return index, self.maps[index]

    def _ctx(self, vm, r1, what):
        if r1 != abi.CTX_BASE:
            raise HelperFault(f"{what}: r1 = {r1:#x} is not the context")

    # --- maps ---------------------------------------------------------------------------------

    def map_lookup_elem(self, vm, r1, r2, r3, r4, r5):
        index, m = self._map(r1, "map_lookup_elem")
        if isinstance(m, ProgArrayMap):
            raise HelperFault(f"map_lookup_elem on prog_array '{m.name}'")
        slot = m.lookup(vm.mem.read_bytes(r2, m.key_size))
        return 0 if slot is None else m.slot_address(index, slot)

    def map_update_elem(self, vm, r1, r2, r3, r4, r5):
        index, m = self._map(r1, "map_update_elem")
        if isinstance(m, (ProgArrayMap, DevMap)) or m.read_only:
            raise HelperFault(f"map_update_elem on read-only map '{m.name}'")
        key = vm.mem.read_bytes(r2, m.key_size)
        value = vm.mem.read_bytes(r3, m.value_size)
        return u64(m.update(key, value, r4))

    def map_delete_elem(self, vm, r1, r2, r3, r4, r5):
        index, m = self._map(r1, "map_delete_elem")
        if isinstance(m, (ProgArrayMap, DevMap)) or m.read_only:
            raise HelperFault(f"map_delete_elem on read-only map '{m.name}'")
        return u64(m.delete(vm.mem.read_bytes(r2, m.key_size)))

    # --- time, randomness, cpu, log -----------------------------------------------------------

    def ktime_get_ns(self, vm, r1, r2, r3, r4, r5):
        return self.clock() if callable(self.clock) else self.clock

    def get_prandom_u32(self, vm, r1, r2, r3, r4, r5):
        return self.prandom.next()

    def get_smp_processor_id(self, vm, r1, r2, r3, r4, r5):
        return self.cpu

    def trace_printk(self, vm, r1, r2, r3, r4, r5):
        if r2 == 0:
            return u64(-Errno.EINVAL)
        fmt = vm.mem.read_bytes(r1, r2)
        if 0 not in fmt:
            return u64(-Errno.EINVAL)
        fmt = fmt[:fmt.index(0)].decode("latin-1")
        args = [r3, r4, r5]
        out = []
        pos = 0
        used = 0
        for match in _FORMAT.finditer(fmt):
            out.append(fmt[pos:match.start()])
            pos = match.end()
            flags, width, prec, length, conv = match.groups()
            if conv == "%" and not (flags or width or prec or length):
                out.append("%")
                continue
            if conv is None or conv == "%" or used == 3:
                return u64(-Errno.EINVAL)
            value = args[used]
            used += 1
            out.append(self._format_one(vm, flags, width, prec, length, conv, value))
        out.append(fmt[pos:])
        text = "".join(out)
        self.log.append(text)
        return len(text.encode("latin-1"))

    @staticmethod
    def _format_one(vm, flags, width, prec, length, conv, value):
        bits = 64 if length in ("l", "ll", "z") else 32 if not length else 16 if length == "h" \
            else 8
        value &= (1 << bits) - 1
        spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
        if conv in "di":
            if value >> (bits - 1):
                value -= 1 << bits
            return (spec + "d") % value
        if conv in "uxX":
            return (spec + ("d" if conv == "u" else conv)) % value
        if conv == "c":
            return (spec + "c") % chr(value & 0xff)
        if conv == "p":
            return (spec + "s") % f"{value:#x}"
        # %s: a NUL-terminated string of at most 64 bytes, read through the bounds checks.
        data = bytearray()
        for i in range(64):
            byte = vm.mem.read_bytes(u64(value + i), 1)[0]
            if byte == 0:
                break
            data.append(byte)
        return (spec + "s") % data.decode("latin-1")

    # --- control flow -------------------------------------------------------------------------

    def tail_call(self, vm, r1, r2, r3, r4, r5):
        self._ctx(vm, r1, "tail_call")
        index, m = self._map(r2, "tail_call")
        if not isinstance(m, ProgArrayMap):
            raise HelperFault(f"tail_call: map '{m.name}' is not a prog_array")
        if vm.frames:
            raise HelperFault("tail_call from inside a bpf-to-bpf call is not supported")
        slot = r3 & 0xffff_ffff
        program = m.program(slot) if slot < m.max_entries else None
        if program is None or self.tail_calls >= MAX_TAIL_CALL_CNT:
            return u64(-Errno.ENOENT)
        self.tail_calls += 1
        vm.load_program(program)
        vm.pc = 0
        vm.regs[1] = r1
        return 0

    def redirect_ifindex(self, vm, r1, r2, r3, r4, r5):
        if r2:
            self.redirect = None
            return XdpAction.ABORTED
        self.redirect = ("ifindex", r1 & 0xffff_ffff)
        return XdpAction.REDIRECT

    def redirect_map(self, vm, r1, r2, r3, r4, r5):
        index, m = self._map(r1, "redirect_map")
        if not isinstance(m, DevMap):
            raise HelperFault(f"redirect_map: map '{m.name}' is not a devmap")
        action_mask = 0x3
        if r3 & ~(action_mask | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
            self.redirect = None
            return XdpAction.ABORTED
        if r3 & BPF_F_BROADCAST:
            raise HelperFault("redirect_map: BPF_F_BROADCAST is not supported")
        slot = r2 & 0xffff_ffff
        ifindex = m.ifindex(slot) if slot < m.max_entries else None
        if ifindex is None:
            self.redirect = None
            return r3 & action_mask
        self.redirect = ("devmap", index, slot, ifindex)
        return XdpAction.REDIRECT

    # --- packet -------------------------------------------------------------------------------

    def _set_ctx_word(self, vm, field, value):
        i = abi.XDP_MD_FIELDS.index(field)
        vm.mem.ctx[4 * i:4 * i + 4] = (value & 0xffff_ffff).to_bytes(4, "little")

    def xdp_adjust_head(self, vm, r1, r2, r3, r4, r5):
        self._ctx(vm, r1, "xdp_adjust_head")
        mem = vm.mem
        offset = r2 & 0xffff_ffff
        offset -= (offset >> 31) << 32
        data = mem.data + offset
        if data < abi.PKT_BASE + XDP_FRAME_SIZE or data > mem.data_end - ETH_HLEN:
            return u64(-Errno.EINVAL)
        mem.data = data
        self._set_ctx_word(vm, "data", data)
        self._set_ctx_word(vm, "data_meta", data)
        return 0

    def xdp_adjust_tail(self, vm, r1, r2, r3, r4, r5):
        self._ctx(vm, r1, "xdp_adjust_tail")
        mem = vm.mem
        offset = r2 & 0xffff_ffff
        offset -= (offset >> 31) << 32
        data_end = mem.data_end + offset
        if data_end > abi.PKT_BASE + self.frame_limit or data_end < mem.data + ETH_HLEN:
            return u64(-Errno.EINVAL)
        if offset > 0:
            start = mem.data_end - abi.PKT_BASE
            mem.packet[start:start + offset] = bytes(offset)
        mem.data_end = data_end
        self._set_ctx_word(vm, "data_end", data_end)
        return 0

    def csum_diff(self, vm, r1, r2, r3, r4, r5):
        from_size = r2 & 0xffff_ffff
        to_size = r4 & 0xffff_ffff
        if (from_size | to_size) & 3 or from_size + to_size > 512:
            return u64(-Errno.EINVAL)
        from_bytes = vm.mem.read_bytes(r1, from_size) if from_size else b""
        to_bytes = vm.mem.read_bytes(r3, to_size) if to_size else b""
        return csum_diff(from_bytes, to_bytes, r5)

