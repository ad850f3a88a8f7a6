"""Load XDP programs and their maps from a clang-built BPF ELF object, the way libbpf does.

What is understood:

* **program sections** ``xdp``, ``xdp/<name>``, ``xdp.frags``, ``xdp.frags/<name>``; each global
  function in such a section is one program (a section without function symbols, as from an
  assembler, is one program named after the section);
* **subprograms** in ``.text`` (and functions of the same section) reached by bpf-to-bpf
  ``call``: each one used is appended after the program, once, and the call offsets are
  relocated, as libbpf does;
* **maps**: BTF-defined maps in ``.maps`` (``__uint(type, ..)``, ``__type(key, ..)``,
  ``__uint(max_entries, ..)``..., read from ``.BTF``; ``__array(values, ..)`` initial contents of
  a prog_array), legacy ``struct bpf_map_def`` maps in section ``maps``, and global data
  ``.rodata*``, ``.data*``, ``.bss*`` as single-entry array maps (``.rodata`` read-only);
* **relocations** of ``lddw``: to a map, ``src 1, imm = map index``; to global data,
  ``src 2, imm = map index`` and the second slot's ``imm`` = offset in the value.

Anything else (CO-RE relocations, kfunc or extern symbols, BPF_PSEUDO_FUNC callbacks, other
program types) is rejected with an error naming the section or symbol.
"""

import io
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from bpfcore.abi import MAP_WINDOW, MAX_MAPS, MapType
from bpfcore.errors import BpfcoreError
from bpfcore.sim.model.maps import BPF_F_RDONLY_PROG, MapSpec
from bpfcore.sim.load.program import Program

__all__ = ["ElfObject", "ElfProgram", "load_elf", "load_elf_bytes", "is_xdp_section",
           "find_bpf_compiler", "compile_c"]

EM_BPF = 247
R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10

OP_LDDW = 0x18
OP_CALL = 0x85
BPF_PSEUDO_CALL = 1


@dataclass
class ElfProgram:
    """One program of an object.

    Members
    -------
    name : str
        The function name (or the section name for a section without functions).
    section : str
    program : Program
        Relocated slots: subprograms appended, ``lddw`` map references by map index.
    frags : bool
        From an ``xdp.frags`` section (the program accepts multi-buffer packets).
    """
    name: str
    section: str
    program: Program
    frags: bool = False


@dataclass
class ElfObject:
    """A loaded object: its programs, its maps (in map-index order), its license."""
    path: str
    programs: list
    maps: list
    license: str = ""
    skipped: list = field(default_factory=list)

    def find(self, selector=None):
        """The program whose name or section is ``selector``.

        The default is the program of section ``xdp``, else the first program.

        Raises
        ------
        BpfcoreError
            No program matches, or ``selector`` is None and there is no program.
        """
        if not self.programs:
            raise BpfcoreError(f"{self.path}: no XDP program (sections xdp, xdp/..., xdp.frags)")
        if selector is None:
            return next((p for p in self.programs if p.section == "xdp"), self.programs[0])
        for prog in self.programs:
            if selector in (prog.name, prog.section):
                return prog
        names = ", ".join(f"{p.name} (section {p.section})" for p in self.programs)
        raise BpfcoreError(f"{self.path}: no program or section named {selector!r}; the "
                           f"object has: {names}")

    @property
    def programs_by_name(self):
        """``{name: program}`` (tail-call targets are named by ``prog_array`` initialisers)."""
        return {p.name: p for p in self.programs}


def is_xdp_section(name):
    return name in ("xdp", "xdp.frags") or name.startswith(("xdp/", "xdp.frags/"))


# --- BTF ---------------------------------------------------------------------------------------

BTF_MAGIC = 0xeB9F
(K_INT, K_PTR, K_ARRAY, K_STRUCT, K_UNION, K_ENUM, K_FWD, K_TYPEDEF, K_VOLATILE, K_CONST,
 K_RESTRICT, K_FUNC, K_FUNC_PROTO, K_VAR, K_DATASEC, K_FLOAT, K_DECL_TAG, K_TYPE_TAG,
 K_ENUM64) = range(1, 20)


class Btf:
    """Just enough of a ``.BTF`` section to read map definitions."""

    def __init__(self, data, where):
        self.where = where
        if len(data) < 24:
            raise BpfcoreError(f"{where}: .BTF section is truncated")
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BpfcoreError(f"{where}: .BTF has a bad magic number {magic:#x} (big-endian "
                               "objects are not supported)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types = [None]            # type id 0 is void
        pos = 0
        try:
            while pos < len(types):
                name_off, info, size_type = struct.unpack_from("<III", types, pos)
                pos += 12
                kind = (info >> 24) & 0x1f
                vlen = info & 0xffff
                kflag = info >> 31
                extra = None
                if kind in (K_INT, K_VAR, K_DECL_TAG):
                    extra = struct.unpack_from("<I", types, pos)[0]
                    pos += 4
                elif kind == K_ARRAY:
                    extra = struct.unpack_from("<III", types, pos)
                    pos += 12
                elif kind in (K_STRUCT, K_UNION, K_DATASEC, K_ENUM64):
                    extra = [struct.unpack_from("<III", types, pos + 12 * i) for i in range(vlen)]
                    pos += 12 * vlen
                elif kind in (K_ENUM, K_FUNC_PROTO):
                    extra = [struct.unpack_from("<II", types, pos + 8 * i) for i in range(vlen)]
                    pos += 8 * vlen
                elif kind not in (K_PTR, K_FWD, K_TYPEDEF, K_VOLATILE, K_CONST, K_RESTRICT,
                                  K_FUNC, K_FLOAT, K_TYPE_TAG):
                    raise BpfcoreError(f"{where}: .BTF type {len(self.types)} has unknown kind "
                                       f"{kind}")
                self.types.append((kind, self.name(name_off), size_type, extra, kflag))
        except struct.error:
            raise BpfcoreError(f"{where}: .BTF type section is truncated") from None

    def name(self, off):
        end = self.strings.find(b"\0", off)
        return self.strings[off:end if end >= 0 else None].decode("latin-1")

    def get(self, tid):
        if not 0 < tid < len(self.types):
            raise BpfcoreError(f"{self.where}: .BTF refers to unknown type id {tid}")
        return self.types[tid]

    def skip_mods(self, tid):
        while True:
            kind, _, ref, _, _ = self.get(tid)
            if kind in (K_TYPEDEF, K_VOLATILE, K_CONST, K_RESTRICT, K_TYPE_TAG):
                tid = ref
            else:
                return tid

    def size(self, tid):
        tid = self.skip_mods(tid)
        kind, name, size_type, extra, _ = self.get(tid)
        if kind in (K_INT, K_STRUCT, K_UNION, K_ENUM, K_ENUM64, K_FLOAT, K_DATASEC):
            return size_type
        if kind == K_PTR:
            return 8
        if kind == K_ARRAY:
            return extra[2] * self.size(extra[0])
        raise BpfcoreError(f"{self.where}: .BTF type {tid} ({name or 'anonymous'}) has no size")

    def datasec(self, name):
        for tid, t in enumerate(self.types):
            if t is not None and t[0] == K_DATASEC and t[1] == name:
                return tid, t
        return None, None


def _btf_map(btf, var_tid, where):
    """A MapSpec (without name) and the byte offset of its ``values`` member, from a map VAR."""
    kind, name, struct_tid, _, _ = btf.get(var_tid)
    if kind != K_VAR:
        raise BpfcoreError(f"{where}: .maps entry {var_tid} is not a variable")
    stid = btf.skip_mods(struct_tid)
    skind, _, _, members, kflag = btf.get(stid)
    if skind != K_STRUCT:
        raise BpfcoreError(f"{where}: map '{name}' is not a struct in .BTF")
    fields = {}
    values_offset = None
    for name_off, mtype, moffset in members:
        mname = btf.name(name_off)
        bit = moffset & 0xffffff if kflag else moffset
        mtid = btf.skip_mods(mtype)
        mkind, _, ref, extra, _ = btf.get(mtid)
        if mname in ("type", "max_entries", "map_flags", "key_size", "value_size", "numa_node",
                     "map_extra", "pinning"):
            if mkind != K_PTR:
                raise BpfcoreError(f"{where}: map '{name}': member {mname} is not __uint()")
            akind, _, _, arr, _ = btf.get(btf.skip_mods(ref))
            if akind != K_ARRAY:
                raise BpfcoreError(f"{where}: map '{name}': member {mname} is not __uint()")
            fields[mname] = arr[2]
        elif mname in ("key", "value"):
            if mkind != K_PTR:
                raise BpfcoreError(f"{where}: map '{name}': member {mname} is not __type()")
            fields[mname + "_size"] = btf.size(ref)
        elif mname == "values":
            if mkind != K_ARRAY:
                raise BpfcoreError(f"{where}: map '{name}': member values is not __array()")
            values_offset = bit // 8
        else:
            raise BpfcoreError(f"{where}: map '{name}': unsupported map attribute '{mname}'")
    if fields.get("pinning"):
        raise BpfcoreError(f"{where}: map '{name}': pinning is not supported")
    for needed in ("type", "max_entries"):
        if needed not in fields:
            raise BpfcoreError(f"{where}: map '{name}' has no {needed}")
    if fields["type"] == MapType.PROG_ARRAY:
        fields.setdefault("key_size", 4)
        fields.setdefault("value_size", 4)
    for needed in ("key_size", "value_size"):
        if needed not in fields:
            raise BpfcoreError(f"{where}: map '{name}' has no {needed.replace('_size', '')} "
                               "type or size")
    spec = MapSpec(name=name, type=fields["type"], key_size=fields["key_size"],
                   value_size=fields["value_size"], max_entries=fields["max_entries"],
                   flags=fields.get("map_flags", 0), section=".maps")
    return spec, values_offset


# --- the loader --------------------------------------------------------------------------------

class _Loader:
    def __init__(self, stream, path):
        self.path = path
        try:
            self.elf = ELFFile(stream)
            if self.elf["e_machine"] not in ("EM_BPF", EM_BPF):
                raise BpfcoreError(f"{path}: not a BPF object (machine "
                                   f"{self.elf['e_machine']})")
            if self.elf.elfclass != 64 or not self.elf.little_endian:
                raise BpfcoreError(f"{path}: only 64-bit little-endian BPF objects are supported")
            self.sections = list(self.elf.iter_sections())
        except ELFError as error:
            raise BpfcoreError(f"{path}: not a valid ELF file: {error}") from None
        self.symtab = self.elf.get_section_by_name(".symtab")
        if not isinstance(self.symtab, SymbolTableSection):
            raise BpfcoreError(f"{path}: the object has no symbol table")
        self.symbols = list(self.symtab.iter_symbols())
        self.relocs = {}         # section index -> list of (offset, symbol, type)
        for sec in self.sections:
            if isinstance(sec, RelocationSection):
                target = sec["sh_info"]
                self.relocs[target] = [(r["r_offset"], self.symbols[r["r_info_sym"]],
                                        r["r_info_type"]) for r in sec.iter_relocations()]
        self.maps = []
        self.map_by_symbol = {}          # (section index, symbol value) -> map index
        self.data_maps = {}              # section index -> map index
        btf_sec = self.elf.get_section_by_name(".BTF")
        self.btf = Btf(btf_sec.data(), path) if btf_sec is not None else None
        self._check_btf_ext()

    def where(self, section, symbol=None):
        text = f"{self.path}: section {section}"
        return text + (f", symbol {symbol}" if symbol else "")

    def _check_btf_ext(self):
        sec = self.elf.get_section_by_name(".BTF.ext")
        if sec is None:
            return
        data = sec.data()
        if len(data) >= 32:
            hdr_len = struct.unpack_from("<I", data, 4)[0]
            if hdr_len >= 32:
                core_len = struct.unpack_from("<I", data, 28)[0]
                if core_len:
                    raise BpfcoreError(f"{self.path}: CO-RE relocations (.BTF.ext) are not "
                                       "supported; build without BPF_CORE_READ or "
                                       "preserve_access_index")

    def section_name(self, index):
        return self.sections[index].name

    # Maps -------------------------------------------------------------------------------------

    def load_maps(self):
        for index, sec in enumerate(self.sections):
            if sec.name == ".maps":
                self._btf_maps(index, sec)
        for index, sec in enumerate(self.sections):
            if sec.name == "maps":
                self._legacy_maps(index, sec)
        for index, sec in enumerate(self.sections):
            name = sec.name
            if name.startswith((".rodata", ".data", ".bss")) and sec["sh_size"] and \
                    sec["sh_type"] in ("SHT_PROGBITS", "SHT_NOBITS") and sec["sh_flags"] & 2:
                self._data_map(index, sec)

    def _symbols_in(self, index):
        return sorted((s for s in self.symbols if s["st_shndx"] == index and s.name
                       and s["st_info"]["type"] in ("STT_OBJECT", "STT_NOTYPE")),
                      key=lambda s: s["st_value"])

    def _btf_maps(self, index, sec):
        if self.btf is None:
            raise BpfcoreError(f"{self.where('.maps')}: BTF-defined maps need a .BTF section "
                               "(compile with -g)")
        _, datasec = self.btf.datasec(".maps")
        if datasec is None:
            raise BpfcoreError(f"{self.where('.maps')}: .BTF has no .maps DATASEC")
        # clang leaves DATASEC offsets to the loader (libbpf's btf_fixup_datasec): take them
        # from the symbols of the .maps section.
        syms = {s.name: s for s in self._symbols_in(index)}
        entries = []
        for var_tid, offset, size in datasec[3]:
            var_name = self.btf.get(var_tid)[1]
            sym = syms.get(var_name)
            if sym is None:
                raise BpfcoreError(f"{self.where('.maps', var_name)}: map has no ELF symbol")
            entries.append((sym["st_value"], sym["st_size"] or size, var_tid))
        for offset, size, var_tid in sorted(entries):
            spec, values_offset = _btf_map(self.btf, var_tid, self.where(".maps"))
            map_index = self._add_map(spec)
            self.map_by_symbol[(index, offset)] = map_index
            if values_offset is not None:
                self._prog_array_init(index, map_index, spec, offset + values_offset,
                                      offset + size)

    def _prog_array_init(self, sec_index, map_index, spec, start, end):
        if spec.type != MapType.PROG_ARRAY:
            raise BpfcoreError(f"{self.where('.maps', spec.name)}: initial values are supported "
                               "for prog_array maps only")
        for offset, sym, rtype in self.relocs.get(sec_index, []):
            if start <= offset < end:
                slot = (offset - start) // 8
                if slot >= spec.max_entries:
                    raise BpfcoreError(f"{self.where('.maps', spec.name)}: initial value for "
                                       f"slot {slot} is beyond max_entries")
                spec.init_progs[slot] = sym.name

    def _legacy_maps(self, index, sec):
        syms = self._symbols_in(index)
        if not syms:
            raise BpfcoreError(f"{self.where('maps')}: no map symbols")
        data = sec.data()
        def_size = len(data) // len(syms)
        if def_size < 20:
            raise BpfcoreError(f"{self.where('maps')}: map definitions of {def_size} bytes are "
                               "smaller than struct bpf_map_def (20)")
        for sym in syms:
            off = sym["st_value"]
            if off + 20 > len(data):
                raise BpfcoreError(f"{self.where('maps', sym.name)}: definition is truncated")
            mtype, key_size, value_size, max_entries, flags = struct.unpack_from("<5I", data, off)
            if any(data[off + 20:off + def_size]):
                raise BpfcoreError(f"{self.where('maps', sym.name)}: unsupported extra fields "
                                   "in the map definition")
            spec = MapSpec(name=sym.name, type=mtype, key_size=key_size, value_size=value_size,
                           max_entries=max_entries, flags=flags, section="maps")
            self.map_by_symbol[(index, off)] = self._add_map(spec)

    def _data_map(self, index, sec):
        name = sec.name
        read_only = name.startswith(".rodata")
        size = sec["sh_size"]
        if size > MAP_WINDOW:
            raise BpfcoreError(f"{self.where(name)}: {size} bytes of global data, more than a "
                               f"map's {MAP_WINDOW}-byte window")
        initial = bytes(size) if sec["sh_type"] == "SHT_NOBITS" else sec.data()
        spec = MapSpec(name=name, type=MapType.ARRAY, key_size=4, value_size=size,
                       max_entries=1, flags=BPF_F_RDONLY_PROG if read_only else 0,
                       initial=initial, read_only=read_only, section=name)
        self.data_maps[index] = self._add_map(spec)

    def _add_map(self, spec):
        self.maps.append(spec)
        return len(self.maps) - 1

    # Programs ---------------------------------------------------------------------------------

    def _functions(self, index):
        """(name, start slot, slot count, is global) of the functions in a section, by start."""
        sec = self.sections[index]
        funcs = []
        for s in self.symbols:
            kind, bind = s["st_info"]["type"], s["st_info"]["bind"]
            # Functions, and global labels of hand-written assembly (NOTYPE, no size).
            if s["st_shndx"] == index and (kind == "STT_FUNC" or kind == "STT_NOTYPE"
                                           and bind == "STB_GLOBAL" and s.name):
                start, size = s["st_value"], s["st_size"]
                if start % 8 or size % 8:
                    raise BpfcoreError(f"{self.where(sec.name, s.name)}: function is not "
                                       "aligned to 8-byte instructions")
                funcs.append((s.name, start // 8, size // 8,
                              s["st_info"]["bind"] != "STB_LOCAL"))
        funcs.sort(key=lambda f: f[1])
        # A symbol without a size (hand-written assembly) runs to the next function.
        end = sec["sh_size"] // 8
        for i, (name, start, count, is_global) in enumerate(funcs):
            if count == 0:
                stop = funcs[i + 1][1] if i + 1 < len(funcs) else end
                funcs[i] = (name, start, stop - start, is_global)
        return funcs

    def load_programs(self):
        programs = []
        skipped = []
        self.code = {}
        for index, sec in enumerate(self.sections):
            if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & 4:   # SHF_EXECINSTR
                continue
            if sec.name == ".text" or not sec["sh_size"]:
                continue
            if not is_xdp_section(sec.name):
                skipped.append(sec.name)
                continue
            funcs = self._functions(index)
            if not funcs:
                funcs = [(sec.name, 0, sec["sh_size"] // 8, True)]
            for name, start, count, is_global in funcs:
                if not is_global:
                    raise BpfcoreError(f"{self.where(sec.name, name)}: a program must not be "
                                       "static (libbpf rejects it too)")
                slots = self._link(index, start, count, name)
                program = Program(slots, name=f"{self.path}:{name}")
                programs.append(ElfProgram(name, sec.name, program,
                                           frags=sec.name.startswith("xdp.frags")))
        return programs, skipped

    def _slots(self, index):
        if index not in self.code:
            data = self.sections[index].data()
            if len(data) % 8:
                raise BpfcoreError(f"{self.where(self.section_name(index))}: size is not a "
                                   "multiple of 8 bytes")
            self.code[index] = [int.from_bytes(data[i:i + 8], "little")
                                for i in range(0, len(data), 8)]
        return self.code[index]

    def _function_at(self, index, slot, where):
        funcs = self._functions(index)
        if not funcs:
            return (self.section_name(index), 0, len(self._slots(index)), True)
        for func in funcs:
            if func[1] <= slot < func[1] + func[2]:
                return func
        raise BpfcoreError(f"{where}: call target {slot} in section "
                           f"{self.section_name(index)} is not inside a function")

    def _link(self, index, start, count, name):
        """The slots of program ``name`` with its subprograms appended and references fixed."""
        out = []
        placed = {(index, start): 0}     # (section, function start) -> base slot in out
        planned = count                  # end of everything placed or queued
        queue = [(index, start, count, name)]
        while queue:
            sec_index, fstart, fcount, fname = queue.pop(0)
            base = placed[(sec_index, fstart)]
            code = self._slots(sec_index)[fstart:fstart + fcount]
            where = self.where(self.section_name(sec_index), fname)
            if len(code) != fcount:
                raise BpfcoreError(f"{where}: function runs past the end of its section")
            out.extend(code)
            relocs = {off // 8: (sym, rtype) for off, sym, rtype in self.relocs.get(sec_index, [])}
            for i in range(fcount):
                word = out[base + i]
                opcode = word & 0xff
                src = (word >> 12) & 0xf
                imm = _s32(word >> 32)
                rel = relocs.get(fstart + i)
                if opcode == OP_CALL and src == BPF_PSEUDO_CALL:
                    if rel is not None:
                        sym, _ = rel
                        if not isinstance(sym["st_shndx"], int) or sym["st_shndx"] == 0:
                            raise BpfcoreError(f"{where}: call to undefined function "
                                               f"'{sym.name}' (extern or kfunc)")
                        tsec = sym["st_shndx"]
                        target = sym["st_value"] // 8 + imm + 1
                    else:
                        tsec, target = sec_index, fstart + i + 1 + imm
                    fn, tstart, tcount, _ = self._function_at(tsec, target, f"{where}, slot {i}")
                    if (tsec, tstart) not in placed:
                        placed[(tsec, tstart)] = planned
                        planned += tcount
                        queue.append((tsec, tstart, tcount, fn))
                    new_imm = placed[(tsec, tstart)] + (target - tstart) - (base + i) - 1
                    out[base + i] = (word & 0xffff_ffff) | ((new_imm & 0xffff_ffff) << 32)
                elif rel is not None:
                    sym, rtype = rel
                    if opcode != OP_LDDW or rtype != R_BPF_64_64 or i + 1 >= fcount:
                        raise BpfcoreError(f"{where}: unsupported relocation (type {rtype}) "
                                           f"against '{sym.name}' at slot {i}")
                    out[base + i], out[base + i + 1] = self._map_ref(word, out[base + i + 1],
                                                                     sym, where, i)
                elif opcode == OP_LDDW and src != 0:
                    raise BpfcoreError(f"{where}: slot {i}: lddw src {src} without a "
                                       "relocation is not supported")
        return out

    def _map_ref(self, word, hi, sym, where, i):
        shndx = sym["st_shndx"]
        if shndx in ("SHN_UNDEF", 0):
            raise BpfcoreError(f"{where}: slot {i}: reference to undefined symbol '{sym.name}' "
                               "(extern, kconfig or ksym) is not supported")
        if not isinstance(shndx, int):
            raise BpfcoreError(f"{where}: slot {i}: reference to '{sym.name}' in {shndx}")
        imm = _s32(word >> 32)
        if shndx in self.data_maps:
            offset = (sym["st_value"] if sym["st_info"]["type"] != "STT_SECTION" else 0) + imm
            map_index = self.data_maps[shndx]
            new = (word & 0xffff) & ~0xf000 | (2 << 12) | (map_index << 32)
            return new, (hi & 0xffff_ffff) | ((offset & 0xffff_ffff) << 32)
        key = (shndx, sym["st_value"] + (imm if sym["st_info"]["type"] == "STT_SECTION" else 0))
        if key in self.map_by_symbol:
            map_index = self.map_by_symbol[key]
            new = (word & 0xffff) & ~0xf000 | (1 << 12) | (map_index << 32)
            return new, hi & 0xffff_ffff
        sec_name = self.section_name(shndx)
        if sec_name == ".text" or is_xdp_section(sec_name):
            raise BpfcoreError(f"{where}: slot {i}: taking the address of function "
                               f"'{sym.name}' (callbacks) is not supported")
        raise BpfcoreError(f"{where}: slot {i}: reference to '{sym.name or sec_name}' in "
                           f"section {sec_name}, which is not a map or global data section")

    def load(self):
        self.load_maps()
        if len(self.maps) > MAX_MAPS:
            raise BpfcoreError(f"{self.path}: {len(self.maps)} maps (global data sections "
                               f"included), more than the {MAX_MAPS} the address map holds")
        programs, skipped = self.load_programs()
        lic = self.elf.get_section_by_name("license")
        license = lic.data().split(b"\0")[0].decode("latin-1") if lic is not None else ""
        names = {p.name for p in programs}
        for spec in self.maps:
            for slot, prog_name in spec.init_progs.items():
                if prog_name not in names:
                    raise BpfcoreError(f"{self.where('.maps', spec.name)}: slot {slot} names "
                                       f"'{prog_name}', which is not an XDP program here")
        return ElfObject(self.path, programs, self.maps, license, skipped)


def _s32(x):
    x &= 0xffff_ffff
    return x - (1 << 32) if x >> 31 else x


def load_elf_bytes(data, path="<object>"):
    """Load an object from bytes; see :func:`load_elf`."""
    try:
        return _Loader(io.BytesIO(data), path).load()
    except (ELFError, struct.error, IndexError, ValueError, KeyError, OverflowError,
            TypeError) as error:
        raise BpfcoreError(f"{path}: malformed ELF object: {error}") from None


def load_elf(path):
    """Load the XDP programs and maps of a BPF ELF object.

    Returns
    -------
    ElfObject

    Raises
    ------
    BpfcoreError
        The file is not a BPF object, or uses something the loader does not support (named).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise BpfcoreError(f"cannot read {path}: {error.strerror}") from None
    return load_elf_bytes(data, str(path))



def find_bpf_compiler():
    """The command prefix of a C compiler that targets BPF: clang, else PyPI ziglang; or None."""
    clang = shutil.which("clang")
    if clang:
        return [clang, "-target", "bpf"]
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding"]


def compile_c(source, output, include_dirs=(), flags=("-O2", "-g")):
    """Compile the C file ``source`` to the BPF object ``output``.

    Raises
    ------
    BpfcoreError
        No compiler, or the compiler failed (its first error lines in the message).
    """
    cc = find_bpf_compiler()
    if cc is None:
        raise BpfcoreError("no BPF C compiler: install clang or the ziglang package")
    cmd = cc + list(flags) + [f"-I{d}" for d in include_dirs] + ["-c", str(source), "-o",
                                                                  str(output)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BpfcoreError(f"cannot run {cmd[0]}: {error}") from None
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if "error" in line][:3]
        raise BpfcoreError(f"{source}: compilation failed: {' | '.join(errors) or done.stderr}")
    return output
