"""The ELF loader: sections, subprograms, BTF and legacy maps, global data, relocations, errors."""

import shutil
import struct

import pytest

from bpfcore import abi
from bpfcore.abi import MapType
from bpfcore.errors import BpfcoreError
from bpfcore.sim.load.elf import (compile_c, find_bpf_compiler, is_xdp_section, load_elf,
                                  load_elf_bytes)
from bpfcore.sim.model.helpers import XdpEnv
from bpfcore.sim.model.maps import BPF_F_RDONLY_PROG, create_map
from bpfcore.sim.model.vm import Vm

COMPILER = find_bpf_compiler()
needs_cc = pytest.mark.skipif(COMPILER is None, reason="no BPF C compiler (clang or ziglang)")

#: A self-contained stand-in for bpf_helpers.h, so these tests do not depend on firmware/.
PRELUDE = r"""
typedef unsigned char __u8; typedef unsigned short __u16; typedef unsigned int __u32;
typedef unsigned long long __u64;
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __array(name, val) __typeof__(val) *name[]
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_tail_call)(void *ctx, void *map, __u32 index) = (void *)12;
char _license[] SEC("license") = "GPL";
"""


@pytest.fixture
def build(tmp_path):
    def build(source, name="prog"):
        c = tmp_path / f"{name}.c"
        c.write_text(PRELUDE + source)
        return load_elf(compile_c(c, tmp_path / f"{name}.o"))
    return build


def run_vm(obj, name, packet=bytes(64)):
    prog = obj.find(name)
    maps = [create_map(spec) for spec in obj.maps]
    env = XdpEnv(maps)
    vm = Vm(prog.program, helpers=env.helpers(), maps=maps)
    data = abi.PKT_BASE + abi.PKT_HEADROOM
    ctx = struct.pack("<6I", data, data + len(packet), data, 1, 0, 0)
    result = vm.run(r1=abi.CTX_BASE, ctx=ctx, packet=packet)
    assert result.ok, result.message
    return result.r0, maps


def test_section_names():
    assert all(map(is_xdp_section, ["xdp", "xdp/x", "xdp.frags", "xdp.frags/y"]))
    assert not any(map(is_xdp_section, ["xdpx", "tc", ".text", "xdp_frags"]))


MULTI = r"""
struct { __uint(type, BPF_HASH); __uint(max_entries, 1000); __uint(map_flags, 0);
         __type(key, struct { __u32 a; __u16 b; }); __type(value, __u64[3]); } flows SEC(".maps");
struct { __uint(type, 2); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); }
	arr SEC(".maps");
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") old_a = { .type = 1, .key_size = 2, .value_size = 6,
					 .max_entries = 9 };
struct bpf_map_def SEC("maps") old_b = { .type = 2, .key_size = 4, .value_size = 4,
					 .max_entries = 3 };
volatile const __u32 table[4] = { 11, 22, 33, 44 };
__u32 counter = 5;
__u64 zeros[3];

static __attribute__((noinline)) __u32 twice(__u32 x) { return x * 2; }
static __attribute__((noinline)) __u32 add_twice(__u32 x, __u32 y) { return twice(x) + twice(y); }

SEC("xdp")
int first(struct xdp_md *ctx)
{
	__u32 k = 1, *v = bpf_map_lookup_elem(&arr, &k);
	counter += 1;
	zeros[2] = 7;
	return add_twice(table[2], counter) + (v ? 1000 : 0);
}

SEC("xdp/second")
int second(struct xdp_md *ctx) { return twice(table[3]) + twice(1); }

SEC("xdp.frags")
int third(struct xdp_md *ctx) { __u16 k = 0; return bpf_map_lookup_elem(&old_a, &k) ? 1 : 2; }

SEC("tc")
int not_xdp(void *ctx) { return 0; }
""".replace("BPF_HASH", "1")


@needs_cc
def test_programs_maps_and_global_data(build):
    obj = build(MULTI)
    assert [(p.name, p.section, p.frags) for p in obj.programs] == [
        ("first", "xdp", False), ("second", "xdp/second", False), ("third", "xdp.frags", True)]
    assert obj.skipped == ["tc"]
    assert obj.license == "GPL"
    specs = {m.name: m for m in obj.maps}
    flows = specs["flows"]
    assert (flows.type, flows.key_size, flows.value_size, flows.max_entries) == (1, 8, 24, 1000)
    assert (specs["arr"].type, specs["arr"].max_entries) == (MapType.ARRAY, 4)
    assert (specs["old_a"].key_size, specs["old_a"].value_size, specs["old_a"].max_entries) == \
        (2, 6, 9)
    assert specs["old_b"].section == "maps"
    rodata, data, bss = specs[".rodata"], specs[".data"], specs[".bss"]
    assert rodata.read_only and rodata.flags == BPF_F_RDONLY_PROG
    assert rodata.initial == struct.pack("<4I", 11, 22, 33, 44)
    assert data.initial == struct.pack("<I", 5) and not data.read_only
    assert bss.initial == bytes(24) and bss.max_entries == 1 and bss.key_size == 4
    # Running the programs checks the call and data relocations.
    r0, maps = run_vm(obj, "first")
    assert r0 == 2 * 33 + 2 * 6 + 1000
    by_name = dict(zip((m.name for m in obj.maps), maps))
    assert by_name[".data"].values == struct.pack("<I", 6)
    assert by_name[".bss"].values[16:24] == struct.pack("<Q", 7)
    assert run_vm(obj, "second")[0] == 2 * 44 + 2
    assert run_vm(obj, "third")[0] == 2
    assert obj.find("xdp/second").name == "second"


@needs_cc
def test_subprograms_are_appended_once(build):
    obj = build(MULTI)
    first = obj.find("first").program
    second = obj.find("second").program
    calls = [i for i in first.insns if i.opcode == 0x85 and i.src == 1]
    assert len(calls) >= 2
    # "second" calls only twice(): its program is shorter than one holding all of .text.
    assert len(second) < len(first) + 8
    for pc, insn in enumerate(first.insns):
        if insn.opcode == 0x85 and insn.src == 1:
            assert 0 <= pc + 1 + insn.imm < len(first)


@needs_cc
def test_two_programs_in_one_section(build):
    obj = build(r"""
static __attribute__((noinline)) int sq(int x) { return x * x; }
static __attribute__((noinline)) int cube(int x) { return sq(x) * x; }
__u32 g[2] = { 3, 4 };
SEC("xdp") int one(struct xdp_md *c) { return cube(g[0]); }
SEC("xdp") int two(struct xdp_md *c) { return sq(g[1]) + cube(2); }
""")
    assert [(p.name, p.section) for p in obj.programs] == [("one", "xdp"), ("two", "xdp")]
    assert run_vm(obj, "one")[0] == 27
    assert run_vm(obj, "two")[0] == 24
    assert obj.find().name == "one"


ASM = """
\t.section xdp,"ax",@progbits
\t.globl prog_a
prog_a:
\tr0 = 2
\tcall sub
\texit
\t.globl prog_b
prog_b:
\tr0 = 1
\texit
\t.text
sub:
\tr0 = 3
\texit
"""


@needs_cc
def test_assembly_labels_are_programs(tmp_path):
    (tmp_path / "a.s").write_text(ASM)
    obj = load_elf(compile_c(tmp_path / "a.s", tmp_path / "a.o", flags=()))
    assert [p.name for p in obj.programs] == ["prog_a", "prog_b"]
    assert len(obj.find("prog_a").program) == 5            # sub appended after exit
    assert run_vm(obj, "prog_a")[0] == 3 and run_vm(obj, "prog_b")[0] == 1


@needs_cc
def test_prog_array_initial_values(build):
    obj = build(r"""
int tgt_a(struct xdp_md *ctx);
int tgt_b(struct xdp_md *ctx);
struct { __uint(type, 3); __uint(max_entries, 8); __uint(key_size, 4); __uint(value_size, 4);
         __array(values, int (void *)); } jumps SEC(".maps") = {
	.values = { [1] = (void *)&tgt_a, [5] = (void *)&tgt_b } };
SEC("xdp") int entry(struct xdp_md *ctx) { bpf_tail_call(ctx, &jumps, 5); return 9; }
SEC("xdp/a") int tgt_a(struct xdp_md *ctx) { return 1; }
SEC("xdp/b") int tgt_b(struct xdp_md *ctx) { return 2; }
""")
    (jumps,) = obj.maps
    assert jumps.type == MapType.PROG_ARRAY and jumps.init_progs == {1: "tgt_a", 5: "tgt_b"}


@needs_cc
@pytest.mark.parametrize("source,message", [
    ("static __attribute__((noinline)) int f(void) { return 1; }\n"
     "SEC(\"xdp\") static int p(struct xdp_md *c) { return f(); }\n"
     "int keep(void) { return (long)&p; }", "must not be static"),
    ("extern int ext(int);\nSEC(\"xdp\") int p(struct xdp_md *c) { return ext(1); }",
     "undefined function 'ext'"),
    ("extern int ext_var;\nSEC(\"xdp\") int p(struct xdp_md *c) { return ext_var; }",
     "undefined symbol 'ext_var'"),
    ("struct { __uint(type, 1); __uint(max_entries, 4); __uint(pinning, 1); __type(key, int);"
     " __type(value, int); } pinned SEC(\".maps\");\n"
     "SEC(\"xdp\") int p(struct xdp_md *c) { return bpf_map_lookup_elem(&pinned, &c) != 0; }",
     "map 'pinned': pinning"),
    ("struct { __uint(type, 1); __uint(max_entries, 4); __uint(numa_nodes, 1); __type(key, int);"
     " __type(value, int); } odd SEC(\".maps\");\n"
     "SEC(\"xdp\") int p(struct xdp_md *c) { return bpf_map_lookup_elem(&odd, &c) != 0; }",
     "unsupported map attribute 'numa_nodes'"),
    ("struct { __uint(type, 1); __uint(max_entries, 4); __type(key, int); } nov SEC(\".maps\");\n"
     "SEC(\"xdp\") int p(struct xdp_md *c) { return bpf_map_lookup_elem(&nov, &c) != 0; }",
     "map 'nov' has no value"),
    ("struct s { int a, b; } __attribute__((preserve_access_index));\n"
     "SEC(\"xdp\") int p(struct s *c) { return c->b; }", "CO-RE"),
])
def test_unsupported_things_are_named(build, source, message):
    with pytest.raises(BpfcoreError, match=message):
        build(source)


@needs_cc
def test_no_xdp_program(build):
    obj = build("SEC(\"tc\") int p(void *c) { return 0; }")
    with pytest.raises(BpfcoreError, match="no XDP program"):
        obj.find()
    with pytest.raises(BpfcoreError, match="no program or section named 'x'"):
        build("SEC(\"xdp\") int p(struct xdp_md *c) { return 2; }").find("x")


def test_not_bpf_objects(tmp_path):
    with pytest.raises(BpfcoreError, match="not a valid ELF file"):
        load_elf_bytes(b"hello world" * 10, "x.o")
    with pytest.raises(BpfcoreError, match="cannot read"):
        load_elf(tmp_path / "missing.o")
    true = shutil.which("true")
    if true:
        with pytest.raises(BpfcoreError, match="not a BPF object"):
            load_elf(true)


@needs_cc
def test_truncated_object(build, tmp_path):
    build("SEC(\"xdp\") int p(struct xdp_md *c) { return 2; }", "ok")
    data = (tmp_path / "ok.o").read_bytes()
    for cut in (40, len(data) // 2, len(data) - 30):
        with pytest.raises(BpfcoreError, match="x.o"):
            load_elf_bytes(data[:cut], "x.o")
