"""BPF maps with Linux kernel semantics, laid out so that hardware can reproduce them.

Every map keeps its values in one flat ``values`` bytearray of ``capacity * value_size`` bytes;
the VM maps map ``i`` at ``abi.MAP_BASE + i * abi.MAP_WINDOW`` and value slot ``k`` at
``window + k * value_size`` (:meth:`Map.slot_address`). Lookups return a slot index, which the
helpers turn into that address, so a program writes map values in place, as in the kernel.

Results follow the kernel: ``update`` and ``delete`` return 0 or a negative errno
(``-EINVAL``, ``-EEXIST``, ``-ENOENT``, ``-E2BIG``, ``-ENOSPC``), never raise for a program's
mistakes. Python-side misuse (a key of the wrong size from a test or the command line) raises
:class:`~bpfcore.errors.BpfcoreError`.

Slot allocation (deterministic, for the hardware map engine):

* **array**: slot = index.
* **hash / lru_hash**: values live in ``max_entries`` slots; a new key takes the lowest free slot.
  The key index is an open-addressed table of ``buckets`` = the power of two >= 2 * max_entries
  (at least 8) entries, bucket = ``crc32(key bytes) mod buckets`` (zlib/Ethernet CRC-32), linear
  probing of at most ``probe_limit`` buckets, deletion by backward shift (no tombstones). With the
  table at most half full a probe run longer than the limit is very unlikely; if it happens the
  insert fails with ``-E2BIG`` (the kernel never fails there: the one documented deviation).
* **lru_hash**: every lookup and update stamps the entry with a use counter; an insert into a full
  map evicts the entry with the oldest stamp and reuses its slot. (The kernel's LRU is
  approximate and per-CPU: which entry it evicts, and whether it evicts before the map is full,
  is not defined, so differential tests must not depend on eviction.)
* **lpm_trie**: key = ``u32 prefixlen`` + data bytes; values in slots, lowest free first; lookup
  is longest-prefix match among the entries whose prefix is not longer than the key's (a key
  prefix longer than the data matches nothing).
* **prog_array**: slot = index; a slot holds a program (``programs[index]``) or nothing.
* **devmap**: slot = index; a slot holds ``struct bpf_devmap_val`` (ifindex first) or nothing.
"""

import zlib
from dataclasses import dataclass, field
from typing import Optional

from bpfcore.abi import MAP_BASE, MAP_WINDOW, Errno, MapType
from bpfcore.errors import BpfcoreError

__all__ = ["MapSpec", "Map", "ArrayMap", "HashMap", "LruHashMap", "LpmTrieMap", "ProgArrayMap",
           "DevMap", "create_map", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_NO_PREALLOC",
           "BPF_F_RDONLY_PROG", "map_key_hash"]

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

BPF_F_NO_PREALLOC = 1 << 0
BPF_F_RDONLY_PROG = 1 << 7

#: Largest value the VM accepts for ``max_entries * value_size`` (one map window).
MAX_VALUE_BYTES = MAP_WINDOW


def map_key_hash(key):
    """The bucket hash of a key: CRC-32 (zlib, Ethernet polynomial) over the key bytes."""
    return zlib.crc32(bytes(key))


@dataclass
class MapSpec:
    """A map as a program object declares it (ELF loader output, kernel engine input).

    Members
    -------
    name : str
    type : int
        :class:`~bpfcore.abi.MapType` number.
    key_size, value_size, max_entries, flags : int
    initial : bytes or None
        For global-data maps (``.data``, ``.rodata``, ``.bss``): the contents of entry 0.
    read_only : bool
        Programs may not write values (``.rodata``: ``BPF_F_RDONLY_PROG`` and frozen).
    section : str
        Where it was declared (``.maps``, ``maps``, ``.rodata``...), for messages.
    init_progs : dict of int to str
        prog_array initial contents from BTF ``values``: slot index to program name.
    """
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    initial: Optional[bytes] = None
    read_only: bool = False
    section: str = ""
    init_progs: dict = field(default_factory=dict)

    @property
    def type_name(self):
        try:
            return MapType(self.type).name.lower()
        except ValueError:
            return f"type {self.type}"


def _check_flags(flags):
    if flags & BPF_F_LOCK or flags > BPF_EXIST or flags < 0:
        return -Errno.EINVAL
    return 0


class Map:
    """Base of every map. Subclasses implement lookup/update/delete/items.

    Members
    -------
    spec : MapSpec
    values : bytearray
        ``capacity * value_size`` bytes of value storage, seen by the VM.
    value_size, capacity : int
    read_only : bool
        Whether programs may write the values.
    """
    read_only = False

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.key_size = spec.key_size
        self.value_size = spec.value_size
        self.max_entries = spec.max_entries
        self.capacity = spec.max_entries
        self.values = bytearray(self.capacity * self.value_size)
        # Programs may not write the values of ``.rodata`` or of a map created with
        # BPF_F_RDONLY_PROG (the kernel's verifier refuses such writes at load time; the VM
        # faults on them, as the map memory does).
        self.read_only = self.read_only or bool(spec.read_only or spec.flags & BPF_F_RDONLY_PROG)

    def where(self):
        return f"map '{self.name}'"

    def _key(self, key):
        key = bytes(key)
        if len(key) != self.key_size:
            raise BpfcoreError(f"{self.where()}: key of {len(key)} bytes, the map's key size is "
                               f"{self.key_size}")
        return key

    def _value(self, value):
        value = bytes(value)
        if len(value) != self.value_size:
            raise BpfcoreError(f"{self.where()}: value of {len(value)} bytes, the map's value "
                               f"size is {self.value_size}")
        return value

    def slot_address(self, index, slot):
        """Address of value slot ``slot`` when this map is map ``index`` of a program."""
        return MAP_BASE + index * MAP_WINDOW + slot * self.value_size

    def slot_value(self, slot):
        return bytes(self.values[slot * self.value_size:(slot + 1) * self.value_size])

    def _set_slot(self, slot, value):
        self.values[slot * self.value_size:(slot + 1) * self.value_size] = value

    # Program-visible operations; subclasses override.
    def lookup(self, key):
        """Slot index of ``key``'s value, or None."""
        raise NotImplementedError

    def update(self, key, value, flags=BPF_ANY):
        """Insert or replace; 0 or a negative errno."""
        raise NotImplementedError

    def delete(self, key):
        """Remove; 0 or a negative errno."""
        raise NotImplementedError

    def items(self):
        """(key bytes, value bytes) of every entry, in a defined order (keys sorted)."""
        raise NotImplementedError

    def get(self, key):
        """The value bytes of ``key``, or None (host-side read; no LRU stamp)."""
        slot = self.peek(key)
        return None if slot is None else self.slot_value(slot)

    def peek(self, key):
        return self.lookup(key)

    def __len__(self):
        return len(self.items())


class ArrayMap(Map):
    """``BPF_MAP_TYPE_ARRAY``: ``max_entries`` values, all present, indexed by a u32 key."""

    def __init__(self, spec):
        if spec.key_size != 4:
            raise BpfcoreError(f"map '{spec.name}': an array map needs key size 4, not "
                               f"{spec.key_size}")
        super().__init__(spec)
        if spec.initial is not None:
            data = bytes(spec.initial)[:len(self.values)]
            self.values[:len(data)] = data

    def lookup(self, key):
        index = int.from_bytes(self._key(key), "little")
        return index if index < self.max_entries else None

    def update(self, key, value, flags=BPF_ANY):
        # The kernel's order of checks (array_map_update_elem): BPF_F_LOCK is refused last.
        index = int.from_bytes(self._key(key), "little")
        value = self._value(value)
        if flags & ~BPF_F_LOCK > BPF_EXIST or flags < 0:
            return -Errno.EINVAL
        if index >= self.max_entries:
            return -Errno.E2BIG
        if flags & BPF_NOEXIST:
            return -Errno.EEXIST
        if flags & BPF_F_LOCK:
            return -Errno.EINVAL               # no bpf_spin_lock in the value
        self._set_slot(index, value)
        return 0

    def delete(self, key):
        self._key(key)
        return -Errno.EINVAL

    def items(self):
        return [(i.to_bytes(4, "little"), self.slot_value(i)) for i in range(self.max_entries)]


class HashMap(Map):
    """``BPF_MAP_TYPE_HASH``: see the module docstring for the slot and bucket layout.

    Members
    -------
    buckets : int
        Size of the key index (a power of two).
    probe_limit : int
        Most buckets an insert or lookup examines.
    max_probe : int
        Longest probe sequence seen so far (for sizing the hardware).
    """

    def __init__(self, spec, probe_limit=32):
        if spec.key_size <= 0:
            raise BpfcoreError(f"map '{spec.name}': key size must be positive")
        super().__init__(spec)
        self.buckets = 8
        while self.buckets < 2 * self.max_entries:
            self.buckets *= 2
        self.probe_limit = min(probe_limit, self.buckets)
        self.table = [None] * self.buckets          # bucket -> slot
        self.keys = [None] * self.capacity          # slot -> key bytes
        self.max_probe = 0

    def _home(self, key):
        return map_key_hash(key) & (self.buckets - 1)

    def _find(self, key):
        """(bucket, slot) of ``key``, or (None, None)."""
        b = self._home(key)
        for _ in range(self.probe_limit):
            slot = self.table[b]
            if slot is None:
                return None, None
            if self.keys[slot] == key:
                return b, slot
            b = (b + 1) & (self.buckets - 1)
        return None, None

    def _free_slot(self):
        for slot, key in enumerate(self.keys):
            if key is None:
                return slot
        return None

    def _insert(self, key, slot):
        b = self._home(key)
        for probe in range(self.probe_limit):
            if self.table[b] is None:
                self.table[b] = slot
                self.keys[slot] = key
                self.max_probe = max(self.max_probe, probe + 1)
                return True
            b = (b + 1) & (self.buckets - 1)
        return False

    def _remove(self, bucket):
        """Delete the entry at ``bucket`` by backward shift."""
        mask = self.buckets - 1
        slot = self.table[bucket]
        self.keys[slot] = None
        self._set_slot(slot, bytes(self.value_size))
        hole = bucket
        b = (bucket + 1) & mask
        while self.table[b] is not None:
            home = self._home(self.keys[self.table[b]])
            # Move the entry back into the hole if the hole lies on its probe path.
            if (b - home) & mask >= (b - hole) & mask:
                self.table[hole] = self.table[b]
                hole = b
            b = (b + 1) & mask
        self.table[hole] = None
        return slot

    def lookup(self, key):
        return self._find(self._key(key))[1]

    def peek(self, key):
        return self._find(self._key(key))[1]

    def _make_room(self):
        return None

    def update(self, key, value, flags=BPF_ANY):
        if _check_flags(flags):
            return -Errno.EINVAL
        key = self._key(key)
        value = self._value(value)
        _, slot = self._find(key)
        if slot is not None:
            if flags & BPF_NOEXIST:
                return -Errno.EEXIST
            self._set_slot(slot, value)
            self._touch(slot)
            return 0
        if flags & BPF_EXIST:
            return -Errno.ENOENT
        slot = self._free_slot()
        if slot is None:
            slot = self._make_room()
            if slot is None:
                return -Errno.E2BIG
        if not self._insert(key, slot):
            return -Errno.E2BIG
        self._set_slot(slot, value)
        self._touch(slot)
        return 0

    def _touch(self, slot):
        pass

    def delete(self, key):
        bucket, _ = self._find(self._key(key))
        if bucket is None:
            return -Errno.ENOENT
        self._remove(bucket)
        return 0

    def items(self):
        return sorted((key, self.slot_value(slot)) for slot, key in enumerate(self.keys)
                      if key is not None)


class LruHashMap(HashMap):
    """``BPF_MAP_TYPE_LRU_HASH``: a hash map that evicts its least recently used entry.

    Members
    -------
    stamps : list of int
        Per slot, the use counter value of its last lookup or update.
    """

    def __init__(self, spec, probe_limit=32):
        super().__init__(spec, probe_limit)
        self.stamps = [0] * self.capacity
        self.clock = 0

    def _touch(self, slot):
        self.clock += 1
        self.stamps[slot] = self.clock

    def lookup(self, key):
        slot = super().lookup(key)
        if slot is not None:
            self._touch(slot)
        return slot

    def _make_room(self):
        if not self.capacity:
            return None
        victim = min(range(self.capacity), key=lambda s: self.stamps[s])
        bucket, _ = self._find(self.keys[victim])
        return self._remove(bucket)


class LpmTrieMap(Map):
    """``BPF_MAP_TYPE_LPM_TRIE``: longest-prefix match over ``struct bpf_lpm_trie_key``.

    The key is ``u32 prefixlen`` (host order) followed by ``key_size - 4`` data bytes compared
    from the most significant bit of the first byte.
    """

    def __init__(self, spec):
        if spec.key_size <= 4 or spec.key_size > 4 + 256:
            raise BpfcoreError(f"map '{spec.name}': an lpm_trie key must be 4 + 1..256 bytes, "
                               f"not {spec.key_size}")
        if not spec.flags & BPF_F_NO_PREALLOC:
            raise BpfcoreError(f"map '{spec.name}': an lpm_trie needs map_flags "
                               "BPF_F_NO_PREALLOC, as in the kernel")
        super().__init__(spec)
        self.max_prefixlen = 8 * (self.key_size - 4)
        self.entries = {}            # (prefixlen, masked data) -> (slot, key as given)

    def _split(self, key):
        key = self._key(key)
        plen = int.from_bytes(key[:4], "little")
        return key, plen, int.from_bytes(key[4:], "big")

    def _masked(self, data, plen):
        shift = self.max_prefixlen - plen
        return (data >> shift) << shift if plen else 0

    def lookup(self, key):
        _, plen, data = self._split(key)
        if plen > self.max_prefixlen:
            return None                  # as the kernel: no match for an over-long prefix
        best = None
        for (elen, edata), (slot, _) in self.entries.items():
            if elen <= plen and self._masked(data, elen) == edata:
                if best is None or elen > best[0]:
                    best = (elen, slot)
        return None if best is None else best[1]

    def update(self, key, value, flags=BPF_ANY):
        if _check_flags(flags):
            return -Errno.EINVAL
        key, plen, data = self._split(key)
        value = self._value(value)
        if plen > self.max_prefixlen:
            return -Errno.EINVAL
        ident = (plen, self._masked(data, plen))
        entry = self.entries.get(ident)
        if entry is not None:
            if flags & BPF_NOEXIST:
                return -Errno.EEXIST
            slot = entry[0]
        else:
            if flags & BPF_EXIST:
                return -Errno.ENOENT
            used = {s for s, _ in self.entries.values()}
            free = [s for s in range(self.capacity) if s not in used]
            if not free:
                return -Errno.ENOSPC
            slot = free[0]
        self.entries[ident] = (slot, key)
        self._set_slot(slot, value)
        return 0

    def delete(self, key):
        key, plen, data = self._split(key)
        if plen > self.max_prefixlen:
            return -Errno.EINVAL
        entry = self.entries.pop((plen, self._masked(data, plen)), None)
        if entry is None:
            return -Errno.ENOENT
        self._set_slot(entry[0], bytes(self.value_size))
        return 0

    def items(self):
        return sorted((key, self.slot_value(slot)) for slot, key in self.entries.values())

    def peek(self, key):
        _, plen, data = self._split(key)
        if plen > self.max_prefixlen:
            return None
        entry = self.entries.get((plen, self._masked(data, plen)))
        return None if entry is None else entry[0]


class _FdArray(Map):
    """Arrays whose slots are present or empty (prog_array, devmap): read-only to programs."""
    read_only = True

    def __init__(self, spec):
        if spec.key_size != 4:
            raise BpfcoreError(f"map '{spec.name}': a {spec.type_name} needs key size 4, not "
                               f"{spec.key_size}")
        super().__init__(spec)
        self.present = set()

    def _index(self, key):
        return int.from_bytes(self._key(key), "little")

    def lookup(self, key):
        index = self._index(key)
        return index if index in self.present else None

    def delete(self, key):
        index = self._index(key)
        if index >= self.max_entries:
            return -Errno.E2BIG
        if index not in self.present:
            return -Errno.ENOENT
        self.present.discard(index)
        self._set_slot(index, bytes(self.value_size))
        return 0

    def items(self):
        return [(i.to_bytes(4, "little"), self.slot_value(i)) for i in sorted(self.present)]


class ProgArrayMap(_FdArray):
    """``BPF_MAP_TYPE_PROG_ARRAY``: slot ``i`` holds a program for ``bpf_tail_call``.

    Host side only: :meth:`set_program`. The slot's value bytes hold the program's number in
    ``ids`` (as the kernel's user-space view holds a program id).
    """

    def __init__(self, spec):
        if spec.value_size != 4:
            raise BpfcoreError(f"map '{spec.name}': a prog_array needs value size 4")
        super().__init__(spec)
        self.programs = {}

    def set_program(self, index, program, prog_id=0):
        if not 0 <= index < self.max_entries:
            raise BpfcoreError(f"{self.where()}: index {index} is outside "
                               f"0..{self.max_entries - 1}")
        self.programs[index] = program
        self.present.add(index)
        self._set_slot(index, prog_id.to_bytes(4, "little"))

    def update(self, key, value, flags=BPF_ANY):
        raise BpfcoreError(f"{self.where()}: prog_array slots are set with set_program")

    def delete(self, key):
        result = super().delete(key)
        if result == 0:
            self.programs.pop(self._index(key), None)
        return result

    def program(self, index):
        return self.programs.get(index)


class DevMap(_FdArray):
    """``BPF_MAP_TYPE_DEVMAP``: slot ``i`` holds ``struct bpf_devmap_val`` (ifindex, prog fd)."""

    def __init__(self, spec):
        if spec.value_size not in (4, 8):
            raise BpfcoreError(f"map '{spec.name}': a devmap needs value size 4 or 8, not "
                               f"{spec.value_size}")
        super().__init__(spec)

    def update(self, key, value, flags=BPF_ANY):
        if _check_flags(flags):
            return -Errno.EINVAL
        index = self._index(key)
        value = self._value(value)
        if index >= self.max_entries:
            return -Errno.E2BIG
        if flags & BPF_NOEXIST:
            return -Errno.EEXIST
        if self.value_size == 8 and value[4:8] != bytes(4):
            return -Errno.EINVAL               # a program attached to the device entry: not modelled
        self.present.add(index)
        self._set_slot(index, value)
        return 0

    def ifindex(self, index):
        """Target ifindex of slot ``index``, or None if it is empty or out of range."""
        if index not in self.present:
            return None
        return int.from_bytes(self.slot_value(index)[:4], "little")


_CLASSES = {
    MapType.HASH: HashMap,
    MapType.ARRAY: ArrayMap,
    MapType.PROG_ARRAY: ProgArrayMap,
    MapType.LRU_HASH: LruHashMap,
    MapType.LPM_TRIE: LpmTrieMap,
    MapType.DEVMAP: DevMap,
}


def create_map(spec):
    """The map object for ``spec``; raises :class:`BpfcoreError` for unsupported specs."""
    where = f"map '{spec.name}'" + (f" (section {spec.section})" if spec.section else "")
    try:
        cls = _CLASSES[MapType(spec.type)]
    except ValueError:
        supported = ", ".join(f"{t.name.lower()} ({t.value})" for t in _CLASSES)
        raise BpfcoreError(f"{where}: map type {spec.type} is not supported; supported: "
                           f"{supported}") from None
    if spec.max_entries <= 0 or spec.value_size <= 0:
        raise BpfcoreError(f"{where}: max_entries and value_size must be positive "
                           f"(got {spec.max_entries} and {spec.value_size})")
    if spec.max_entries * spec.value_size > MAX_VALUE_BYTES:
        raise BpfcoreError(f"{where}: {spec.max_entries} values of {spec.value_size} bytes "
                           f"exceed the {MAX_VALUE_BYTES}-byte map window")
    return cls(spec)
