"""Maps: kernel update/delete results, slot layout, LRU eviction order, longest-prefix match."""

import random

import pytest

from bpfcore.abi import MAP_BASE, MAP_WINDOW, MapType
from bpfcore.errors import BpfcoreError
from bpfcore.abi import Errno
from bpfcore.sim.model.maps import (BPF_ANY, BPF_EXIST, BPF_F_NO_PREALLOC, BPF_NOEXIST, MapSpec,
                                    create_map, map_key_hash)


def u32(n):
    return n.to_bytes(4, "little")


def make(mtype, key_size=4, value_size=4, max_entries=4, flags=0, **kw):
    return create_map(MapSpec("m", mtype, key_size, value_size, max_entries, flags, **kw))


def test_array_semantics():
    m = make(MapType.ARRAY, value_size=8, max_entries=3)
    assert m.lookup(u32(2)) == 2 and m.lookup(u32(3)) is None
    assert m.update(u32(1), bytes(range(8))) == 0
    assert m.values[8:16] == bytes(range(8))
    assert m.update(u32(3), bytes(8)) == -Errno.E2BIG
    assert m.update(u32(0), bytes(8), BPF_NOEXIST) == -Errno.EEXIST
    assert m.update(u32(0), bytes(8), BPF_EXIST) == 0
    assert m.update(u32(0), bytes(8), 3) == -Errno.EINVAL
    assert m.update(u32(0), bytes(8), 4) == -Errno.EINVAL          # BPF_F_LOCK: no spin lock
    assert m.update(u32(3), bytes(8), 4) == -Errno.E2BIG           # ... checked after the index
    assert m.update(u32(0), bytes(8), 5) == -Errno.EEXIST          # ... and after NOEXIST
    assert m.delete(u32(0)) == -Errno.EINVAL
    assert [k for k, _ in m.items()] == [u32(0), u32(1), u32(2)]
    assert m.slot_address(2, 1) == MAP_BASE + 2 * MAP_WINDOW + 8


def test_hash_flags_and_errors():
    m = make(MapType.HASH, max_entries=2)
    assert m.update(u32(5), u32(50), BPF_EXIST) == -Errno.ENOENT
    assert m.update(u32(5), u32(50), BPF_NOEXIST) == 0
    assert m.update(u32(5), u32(51), BPF_NOEXIST) == -Errno.EEXIST
    assert m.update(u32(5), u32(52), BPF_EXIST) == 0
    assert m.update(u32(6), u32(60)) == 0
    assert m.update(u32(7), u32(70)) == -Errno.E2BIG                # full: no eviction in a hash
    assert m.update(u32(6), u32(61), BPF_ANY) == 0            # replacing works when full
    assert m.get(u32(5)) == u32(52) and m.get(u32(6)) == u32(61)
    assert m.delete(u32(9)) == -Errno.ENOENT
    assert m.delete(u32(5)) == 0 and m.get(u32(5)) is None
    assert m.update(u32(7), u32(70)) == 0
    assert m.items() == [(u32(6), u32(61)), (u32(7), u32(70))]
    with pytest.raises(BpfcoreError, match="key of 3 bytes"):
        m.lookup(b"abc")


def test_hash_slots_are_lowest_free_and_stable():
    m = make(MapType.HASH, max_entries=4)
    for k in range(4):
        assert m.update(u32(k), u32(k)) == 0
    assert [m.lookup(u32(k)) for k in range(4)] == [0, 1, 2, 3]
    m.delete(u32(1))
    assert m.values[4:8] == bytes(4)                          # a deleted value reads as zeros
    m.update(u32(9), u32(9))
    assert m.lookup(u32(9)) == 1
    assert m.lookup(u32(2)) == 2                              # other entries did not move


def test_hash_random_against_dict(seed):
    rng = random.Random(seed)
    m = make(MapType.HASH, key_size=3, value_size=2, max_entries=40)
    model = {}
    for _ in range(3000):
        key = bytes([rng.randrange(4), rng.randrange(4), rng.randrange(5)])
        value = rng.randbytes(2)
        op = rng.randrange(3)
        if op == 0:
            flags = rng.randrange(3)
            if key in model:
                expected = -Errno.EEXIST if flags == BPF_NOEXIST else 0
            else:
                expected = -Errno.ENOENT if flags == BPF_EXIST else -Errno.E2BIG if len(model) >= 40 else 0
            assert m.update(key, value, flags) == expected
            if expected == 0:
                model[key] = value
        elif op == 1:
            assert m.delete(key) == (0 if model.pop(key, None) is not None else -Errno.ENOENT)
        else:
            slot = m.lookup(key)
            assert (slot is None) == (key not in model)
            if slot is not None:
                assert m.slot_value(slot) == model[key]
    assert m.items() == sorted(model.items())
    assert m.max_probe <= m.probe_limit


def test_hash_index_is_crc32():
    m = make(MapType.HASH, max_entries=4)
    assert m.buckets == 8
    m.update(u32(1234), u32(1))
    assert m.table[map_key_hash(u32(1234)) % 8] == 0


def test_lru_evicts_least_recently_used():
    m = make(MapType.LRU_HASH, max_entries=3)
    for k in (1, 2, 3):
        assert m.update(u32(k), u32(k)) == 0
    m.lookup(u32(1))                                          # 2 is now the oldest
    assert m.update(u32(4), u32(4)) == 0
    assert m.get(u32(2)) is None
    assert [k for k, _ in m.items()] == [u32(1), u32(3), u32(4)]
    assert m.lookup(u32(4)) == 1                              # took the evicted slot
    m.update(u32(3), u32(33))                                 # an update also counts as a use
    m.update(u32(5), u32(5))
    assert m.get(u32(1)) is None and m.get(u32(3)) == u32(33)
    assert m.update(u32(6), u32(6), BPF_EXIST) == -Errno.ENOENT
    assert m.update(u32(3), u32(6), BPF_NOEXIST) == -Errno.EEXIST


def lpm_key(plen, *addr):
    return u32(plen) + bytes(addr)


def test_lpm_longest_prefix_match():
    with pytest.raises(BpfcoreError, match="BPF_F_NO_PREALLOC"):
        make(MapType.LPM_TRIE, key_size=8)
    m = make(MapType.LPM_TRIE, key_size=8, max_entries=3, flags=BPF_F_NO_PREALLOC)
    assert m.update(lpm_key(8, 10, 0, 0, 0), u32(8)) == 0
    assert m.update(lpm_key(24, 10, 1, 2, 99), u32(24)) == 0  # host bits are ignored
    assert m.update(lpm_key(0, 0, 0, 0, 0), u32(0)) == 0
    assert m.update(lpm_key(16, 10, 1, 0, 0), u32(16)) == -Errno.ENOSPC
    assert m.update(lpm_key(33, 10, 1, 0, 0), u32(16), BPF_EXIST) == -Errno.EINVAL
    assert m.update(lpm_key(24, 10, 1, 2, 0), u32(25), BPF_NOEXIST) == -Errno.EEXIST
    assert m.update(lpm_key(16, 10, 1, 0, 0), u32(16), BPF_EXIST) == -Errno.ENOENT

    def find(*addr, plen=32):
        slot = m.lookup(lpm_key(plen, *addr))
        return None if slot is None else int.from_bytes(m.slot_value(slot), "little")
    assert find(10, 1, 2, 3) == 24
    assert find(10, 1, 3, 3) == 8
    assert find(11, 1, 2, 3) == 0
    assert find(10, 1, 2, 3, plen=16) == 8                    # a shorter key limits the match
    assert find(10, 1, 2, 3, plen=33) is None                 # longer than the data: no match
    assert m.delete(lpm_key(0, 0, 0, 0, 0)) == 0
    assert find(11, 1, 2, 3) is None
    assert m.delete(lpm_key(0, 0, 0, 0, 0)) == -Errno.ENOENT
    assert m.update(lpm_key(24, 10, 1, 2, 0), u32(7)) == 0    # replace keeps the slot
    assert find(10, 1, 2, 200) == 7
    assert [k[:4] for k, _ in m.items()] == [u32(8), u32(24)]


def test_lpm_random_against_model(seed):
    rng = random.Random(seed)
    m = make(MapType.LPM_TRIE, key_size=6, max_entries=512, flags=BPF_F_NO_PREALLOC)
    model = {}
    for _ in range(300):
        plen = rng.randrange(17)
        data = int.from_bytes(rng.randbytes(2), "big")
        masked = (data >> (16 - plen)) << (16 - plen) if plen else 0
        assert m.update(lpm_key(plen, *data.to_bytes(2, "big")), u32(plen << 16 | masked)) == 0
        model[(plen, masked)] = plen << 16 | masked
    for _ in range(300):
        data = int.from_bytes(rng.randbytes(2), "big")
        best = max((p for p, v in model if (data >> (16 - p) << (16 - p) if p else 0) == v),
                   default=None)
        slot = m.lookup(lpm_key(16, *data.to_bytes(2, "big")))
        if best is None:
            assert slot is None
        else:
            assert int.from_bytes(m.slot_value(slot), "little") >> 16 == best


def test_devmap_and_prog_array():
    d = make(MapType.DEVMAP, max_entries=4)
    assert d.read_only
    assert d.ifindex(1) is None
    assert d.update(u32(1), u32(7)) == 0 and d.ifindex(1) == 7
    assert d.update(u32(4), u32(7)) == -Errno.E2BIG
    assert d.update(u32(1), u32(8), BPF_NOEXIST) == -Errno.EEXIST
    assert d.delete(u32(2)) == -Errno.ENOENT
    assert d.delete(u32(1)) == 0 and d.ifindex(1) is None
    p = make(MapType.PROG_ARRAY, max_entries=2)
    p.set_program(1, "prog", 5)
    assert p.program(1) == "prog" and p.program(0) is None
    assert p.items() == [(u32(1), u32(5))]
    with pytest.raises(BpfcoreError, match="outside"):
        p.set_program(2, "prog")


@pytest.mark.parametrize("spec,message", [
    (MapSpec("x", 99, 4, 4, 4), "map type 99 is not supported"),
    (MapSpec("x", MapType.ARRAY, 8, 4, 4), "key size 4"),
    (MapSpec("x", MapType.HASH, 4, 0, 4), "must be positive"),
    (MapSpec("x", MapType.ARRAY, 4, 4096, 4096), "map window"),
    (MapSpec("x", MapType.DEVMAP, 4, 12, 4), "value size 4 or 8"),
])
def test_bad_specs(spec, message):
    with pytest.raises(BpfcoreError, match=message):
        create_map(spec)
