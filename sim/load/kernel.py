"""The Linux kernel as a reference: thin ctypes wrappers of the ``bpf()`` system call.

The kernel's verifier, interpreter and JIT are the third opinion next to the golden VM and the RTL
(ARCHITECTURE.md, "Host side"). This module talks to it directly, without libbpf:

* maps: :class:`KernelMap` (``BPF_MAP_CREATE``, ``BPF_MAP_LOOKUP_ELEM``, ``BPF_MAP_UPDATE_ELEM``,
  ``BPF_MAP_DELETE_ELEM``, ``BPF_MAP_GET_NEXT_KEY``);
* programs: :class:`KernelProgram` (``BPF_PROG_LOAD``, the verifier log in the error on rejection)
  and :meth:`KernelProgram.test_run` (``BPF_PROG_TEST_RUN``: data in/out, ``xdp_md`` context in,
  repeat count; returns retval, data out and duration);
* :func:`run_slots`: load a raw program (a list of 64-bit slots, map references by *index* as the
  VM sees them) and run it once;
* :func:`kernel_available`: whether ``bpf()`` works here, and if not why (tests skip with it).

Both classes own a file descriptor and are context managers (``close()`` is idempotent).

Only x86_64 is supported (``bpf`` is system call 321 there). Programs are loaded without BTF.
In the kernel an XDP program's ``r1`` is the ``xdp_md`` context and its return value is 32 bits
wide (``retval``); programs that want to report 64 bits store them in the packet or a map.
"""

import ctypes
import errno
import os
import platform
import sys
from dataclasses import dataclass

from bpfcore.errors import BpfcoreError
from bpfcore.isa import Kind, decode_slot, encode_slot, find_form

__all__ = [
    "KernelError", "KernelMap", "KernelProgram", "TestRun", "kernel_available", "bpf",
    "run_slots", "patch_map_refs", "XdpMd", "BPF_PROG_TYPE_SOCKET_FILTER", "BPF_PROG_TYPE_XDP",
    "BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_ARRAY", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST",
]

SYS_BPF_X86_64 = 321

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10

# enum bpf_prog_type (the two this module is used with)
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_XDP = 6

# enum bpf_map_type (the common ones; any number is accepted)
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2

# map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

BPF_OBJ_NAME_LEN = 16
LOG_SIZE = 1 << 20
LOG_LEVEL = 1


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("map_ifindex", ctypes.c_uint32),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


class _MapElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),      # also next_key
        ("flags", ctypes.c_uint64),
    ]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
        ("prog_btf_fd", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("func_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("line_info_cnt", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("core_relo_cnt", ctypes.c_uint32),
        ("fd_array", ctypes.c_uint64),
    ]


class _TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class XdpMd(ctypes.Structure):
    """``struct xdp_md`` as ``BPF_PROG_TEST_RUN`` takes it in ``ctx_in``.

    For test runs ``data`` is the metadata length, ``data_end`` the packet length and
    ``data_meta`` 0; ``ingress_ifindex``/``rx_queue_index`` must name a real device and queue
    (0 = the loopback device's queue 0).
    """
    _fields_ = [(name, ctypes.c_uint32) for name in
                ("data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index",
                 "egress_ifindex")]


class KernelError(BpfcoreError):
    """A ``bpf()`` call failed.

    Members
    -------
    errno : int
    log : str
        The verifier log for a rejected ``BPF_PROG_LOAD``, else empty.
    """

    def __init__(self, message, err=0, log=""):
        self.errno = err
        self.log = log
        super().__init__(message)


_libc = None


def _syscall():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


def _errname(err):
    return f"{errno.errorcode.get(err, 'E?')} ({os.strerror(err)})"


def bpf(cmd, attr):
    """Issue ``bpf(cmd, &attr, sizeof attr)``; return the result or raise :class:`KernelError`."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise KernelError(f"bpf(): only Linux on x86_64 is supported, not {sys.platform} "
                          f"{platform.machine()}", errno.ENOSYS)
    result = _syscall()(ctypes.c_long(SYS_BPF_X86_64), ctypes.c_long(cmd), ctypes.byref(attr),
                        ctypes.c_long(ctypes.sizeof(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise KernelError(f"bpf() command {cmd} failed: {_errname(err)}", err)
    return result


def _addr(buffer):
    return ctypes.addressof(buffer) if buffer is not None else 0


class _Fd:
    """Owns a file descriptor; a context manager."""

    fd = -1

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass


class KernelMap(_Fd):
    """A kernel map (``BPF_MAP_CREATE``).

    Parameters
    ----------
    map_type : int
        ``enum bpf_map_type`` (e.g. :data:`BPF_MAP_TYPE_ARRAY`).
    key_size, value_size, max_entries : int
    flags : int
        ``map_flags``.
    name : str
        Up to 15 characters.

    Raises
    ------
    KernelError
        The kernel refused the map.
    """

    def __init__(self, map_type, key_size, value_size, max_entries, flags=0, name=""):
        attr = _MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                              max_entries=max_entries, map_flags=flags,
                              map_name=name.encode()[:BPF_OBJ_NAME_LEN - 1])
        try:
            self.fd = bpf(BPF_MAP_CREATE, attr)
        except KernelError as error:
            raise KernelError(f"cannot create map {name or '<unnamed>'} (type {map_type}, key "
                              f"{key_size}, value {value_size}, {max_entries} entries): "
                              f"{_errname(error.errno)}", error.errno) from None
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name

    def _key(self, key):
        if isinstance(key, int):
            key = key.to_bytes(self.key_size, "little")
        if len(key) != self.key_size:
            raise KernelError(f"map {self.name or self.fd}: key of {len(key)} bytes, the map's "
                              f"keys have {self.key_size}")
        return ctypes.create_string_buffer(bytes(key), self.key_size)

    def _elem(self, cmd, key, value=None, flags=0):
        kbuf = self._key(key) if key is not None else None
        attr = _MapElemAttr(map_fd=self.fd, key=_addr(kbuf), value=_addr(value), flags=flags)
        return bpf(cmd, attr)

    def lookup(self, key):
        """The value stored under ``key`` (bytes), or None if there is none."""
        value = ctypes.create_string_buffer(self.value_size)
        try:
            self._elem(BPF_MAP_LOOKUP_ELEM, key, value)
        except KernelError as error:
            if error.errno == errno.ENOENT:
                return None
            raise
        return value.raw

    def update(self, key, value, flags=BPF_ANY):
        """Store ``value`` (bytes of ``value_size``) under ``key``."""
        if len(value) != self.value_size:
            raise KernelError(f"map {self.name or self.fd}: value of {len(value)} bytes, the "
                              f"map's values have {self.value_size}")
        self._elem(BPF_MAP_UPDATE_ELEM, key, ctypes.create_string_buffer(bytes(value),
                                                                          self.value_size), flags)

    def delete(self, key):
        """Delete ``key``; False if it was not there."""
        try:
            self._elem(BPF_MAP_DELETE_ELEM, key)
        except KernelError as error:
            if error.errno == errno.ENOENT:
                return False
            raise
        return True

    def next_key(self, key=None):
        """The key after ``key`` (None: the first key), or None at the end."""
        nxt = ctypes.create_string_buffer(self.key_size)
        try:
            self._elem(BPF_MAP_GET_NEXT_KEY, key, nxt)
        except KernelError as error:
            if error.errno == errno.ENOENT:
                return None
            raise
        return nxt.raw

    def keys(self):
        key = self.next_key()
        while key is not None:
            yield key
            key = self.next_key(key)

    def __repr__(self):
        return f"KernelMap(fd={self.fd}, type={self.map_type}, {self.name!r})"


@dataclass
class TestRun:
    """The result of ``BPF_PROG_TEST_RUN``.

    Members
    -------
    retval : int
        The program's return value (32 bits).
    data_out : bytes
        The packet after the run.
    duration : int
        Average run time in nanoseconds over ``repeat`` runs.
    ctx_out : bytes
        The context after the run (empty unless asked for).
    """
    __test__ = False        # not a pytest class
    retval: int
    data_out: bytes
    duration: int
    ctx_out: bytes = b""


def _log_tail(log, lines=2):
    """The last lines of a verifier log that say something (not the statistics lines)."""
    useful = [line for line in log.splitlines() if line.strip()
              and not line.startswith(("processed ", "verification time", "stack depth"))]
    return " | ".join(useful[-lines:])


class KernelProgram(_Fd):
    """A program loaded into the kernel (``BPF_PROG_LOAD``), verified and (if enabled) JITed.

    Parameters
    ----------
    slots : list of int
        64-bit instruction slots (little-endian view), map references already as the kernel
        wants them (see :func:`patch_map_refs`).
    prog_type : int
        :data:`BPF_PROG_TYPE_XDP` (default) or another ``enum bpf_prog_type``.
    name : str
        Program name (up to 15 characters of ``[A-Za-z0-9_.]``) for messages and bpftool.
    fd_array : sequence of int, optional
        Map fds for ``lddw`` with src 5/6 (map by index).
    license : str
    log_level : int
        Verifier log level used when the program is rejected (the load is retried with it).
    keep_log : bool
        Load with the log from the start and keep it in ``.log`` even when the load succeeds.

    Raises
    ------
    KernelError
        The verifier rejected the program; ``.log`` holds its log, the message its last lines.
    """

    def __init__(self, slots, prog_type=BPF_PROG_TYPE_XDP, name="", fd_array=None,
                 license="GPL", log_level=LOG_LEVEL, keep_log=False):
        self.name = name
        self.log = ""
        self.prog_type = prog_type
        self.n_slots = len(slots)
        insns = (ctypes.c_uint64 * max(len(slots), 1))(*[s & 0xffff_ffff_ffff_ffff
                                                         for s in slots])
        lic = ctypes.create_string_buffer(license.encode())
        fds = None
        if fd_array:
            fds = (ctypes.c_int32 * len(fd_array))(*fd_array)
        safe_name = "".join(c for c in name if c.isalnum() or c in "_.")[:BPF_OBJ_NAME_LEN - 1]

        def attr(level, log):
            return _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(slots), insns=_addr(insns),
                                 license=_addr(lic), log_level=level,
                                 log_size=len(log) if log is not None else 0, log_buf=_addr(log),
                                 prog_name=safe_name.encode(), fd_array=_addr(fds))
        if not keep_log:
            try:
                self.fd = bpf(BPF_PROG_LOAD, attr(0, None))
                return
            except KernelError:
                pass
        # Load (again) with a log: it says why.
        log = ctypes.create_string_buffer(LOG_SIZE)
        try:
            self.fd = bpf(BPF_PROG_LOAD, attr(log_level, log))
            self.log = log.value.decode(errors="replace")
            return
        except KernelError as error:
            first = error
        text = log.value.decode(errors="replace")
        what = f"program {name}" if name else "program"
        raise KernelError(f"kernel rejected {what}: {_errname(first.errno)}: "
                          f"{_log_tail(text) or 'no verifier log'}", first.errno, text)

    def test_run(self, data=b"", *, ctx=None, repeat=1, data_out_size=None, ctx_out_size=0):
        """Run the program with ``BPF_PROG_TEST_RUN``.

        Parameters
        ----------
        data : bytes
            The packet (at least 14 bytes for XDP).
        ctx : bytes or XdpMd, optional
            The context in (``ctx_in``), e.g. an :class:`XdpMd`.
        repeat : int
            Runs to average ``duration`` over (the packet is reset before each run).
        data_out_size : int, optional
            Room for the packet out (default: input size + 256).

        Raises
        ------
        KernelError
        """
        data = bytes(data)
        din = ctypes.create_string_buffer(data, max(len(data), 1))
        out_size = data_out_size if data_out_size is not None else len(data) + 256
        dout = ctypes.create_string_buffer(max(out_size, 1))
        cin = None
        if ctx is not None:
            ctx = bytes(ctx)
            cin = ctypes.create_string_buffer(ctx, len(ctx))
        cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        attr = _TestRunAttr(prog_fd=self.fd, data_size_in=len(data), data_size_out=out_size,
                            data_in=_addr(din), data_out=_addr(dout), repeat=repeat,
                            ctx_size_in=len(ctx) if ctx is not None else 0, ctx_in=_addr(cin),
                            ctx_size_out=ctx_out_size, ctx_out=_addr(cout))
        try:
            bpf(BPF_PROG_TEST_RUN, attr)
        except KernelError as error:
            what = f"program {self.name}" if self.name else "program"
            raise KernelError(f"test run of {what} failed: {_errname(error.errno)}",
                              error.errno) from None
        return TestRun(retval=attr.retval, data_out=dout.raw[:attr.data_size_out],
                       duration=attr.duration,
                       ctx_out=cout.raw[:attr.ctx_size_out] if cout is not None else b"")

    def __repr__(self):
        return f"KernelProgram(fd={self.fd}, {self.name!r}, {self.n_slots} slots)"


def patch_map_refs(slots, map_fds):
    """Replace map *indices* in ``lddw`` src 1 (map) and src 2 (map value) by the kernel map fds.

    The VM (and the RTL) name maps by their index in the program's map list; the kernel wants an
    fd in src 1/2 (src 5/6 keep the index and take ``fd_array`` instead).

    Raises
    ------
    KernelError
        An ``lddw`` names a map that is not in ``map_fds``.
    """
    out = list(slots)
    pc = 0
    while pc < len(out):
        insn = decode_slot(out[pc])
        form = find_form(insn.opcode, insn.src, insn.off, insn.imm)
        if form is not None and form.kind == Kind.LDDW:
            if insn.src in (1, 2):
                if not 0 <= insn.imm < len(map_fds):
                    raise KernelError(f"pc {pc}: lddw refers to map {insn.imm}, but "
                                      f"{len(map_fds)} map(s) were given")
                out[pc] = encode_slot(insn.opcode, insn.dst, insn.src, insn.off,
                                      map_fds[insn.imm])
            pc += 2
        else:
            pc += 1
    return out


def run_slots(slots, data=b"\0" * 64, *, prog_type=BPF_PROG_TYPE_XDP, maps=(), ctx=None,
              name="bpfcore", cpu=None):
    """Load ``slots`` (map references by index into ``maps``) and run it once.

    Parameters
    ----------
    slots : list of int
    data : bytes
        The packet.
    prog_type : int
        :data:`BPF_PROG_TYPE_XDP`: ``r1`` is the ``xdp_md`` context, ``retval`` the low 32 bits
        of ``r0``. :data:`BPF_PROG_TYPE_SOCKET_FILTER`: ``r1`` is the ``__sk_buff``.
    maps : sequence of KernelMap
    ctx : bytes, optional
        ``ctx_in``.
    cpu : int, optional
        Pin the calling thread to this CPU while the program runs (so that
        ``bpf_get_smp_processor_id`` is deterministic); the old affinity is restored.

    Returns
    -------
    TestRun
    """
    fds = [m.fd for m in maps]
    slots = patch_map_refs(slots, fds)
    with KernelProgram(slots, prog_type=prog_type, name=name, fd_array=fds or None) as prog:
        if cpu is None:
            return prog.test_run(data, ctx=ctx)
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            return prog.test_run(data, ctx=ctx)
        finally:
            os.sched_setaffinity(0, old)


_available = None


def kernel_available():
    """Whether ``bpf()`` can load and run XDP programs here: ``(True, "")`` or ``(False, why)``."""
    global _available
    if _available is None:
        _available = _probe()
    return _available


def _probe():
    if sys.platform != "linux":
        return False, f"bpf() needs Linux, this is {sys.platform}"
    if platform.machine() != "x86_64":
        return False, f"bpfcore.sim.load.kernel supports x86_64 only, this is {platform.machine()}"
    try:
        # mov r0, 2 (XDP_PASS); exit
        with KernelProgram([encode_slot(0xb7, 0, 0, 0, 2), encode_slot(0x95)],
                           name="probe") as prog:
            result = prog.test_run(b"\0" * 64)
        if result.retval != 2:
            return False, f"bpf() test run returned {result.retval}, expected 2"
    except KernelError as error:
        if error.errno in (errno.EPERM, errno.EACCES):
            return False, f"bpf() is not permitted here ({_errname(error.errno)}): needs root " \
                          "or CAP_BPF+CAP_NET_ADMIN"
        return False, f"bpf() does not work here: {error}"
    except OSError as error:
        return False, f"bpf() cannot be called: {error}"
    return True, ""
