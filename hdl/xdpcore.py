"""One XDP core: the CPU with its map memory and helper units.

:class:`XdpCore` joins :class:`~bpfcore.hdl.cpu.Cpu`, :class:`~bpfcore.hdl.maps.engine.MapMemory`
and :class:`~bpfcore.hdl.helpers.HelperUnits`:

* the CPU's helper streams go to the helper units, which reach the CPU's memories through its
  ``hmem`` port and the maps through the map memory's helper streams and descriptor port;
* the CPU's map value port goes to the map memory, so map values are in the CPU's address space;
* the map memory's host streams, the helper units' settings (seed, clock, processor id),
  results (redirect target) and ``trace_printk`` text (``printk``) become ports of the core,
  next to every port of the CPU that faces the outside (program, packet, run control, results,
  trace).

``start`` also tells the helper units that a new packet begins (the redirect target clears).
"""

from amaranth import Module
from amaranth.lib import wiring

from .cpu import Cpu
from .helpers import HelperUnits
from .maps.engine import MapMemory
from .ports import pass_through
from .unused import unelaborated

__all__ = ["XdpCore"]

#: CPU ports joined inside the core.
_CPU_INSIDE = ("helper_req", "helper_resp", "hmem", "maps")
#: Helper unit ports joined inside the core.
_HELPERS_INSIDE = ("req", "resp", "mem", "map_req", "map_resp", "map_info_map", "map_info_type",
                   "map_info_key_size", "map_info_value_size", "map_info_read_only", "data",
                   "data_end", "run_start")
#: Map memory ports that become core ports, with their names on the core.
_MAP_OUTSIDE = {"host_req": "map_host_req", "host_resp": "map_host_resp"}


class XdpCore(wiring.Component):
    """CPU + map memory + helper units.

    Parameters
    ----------
    program_slots, frames, with_divider, with_atomics, inject_bug, pkt_slots
        The CPU's build options (:class:`~bpfcore.hdl.cpu.Cpu`).
    n_maps, value_bytes, slots, buckets, max_key_size, max_value_size
        The map memory's sizes (:class:`~bpfcore.hdl.maps.engine.MapMemory`).
    helpers : iterable of int or None
        Helper ids to build (:class:`~bpfcore.hdl.helpers.HelperUnits`; None: all it has).
    helper_options : dict
        Further keyword arguments of :class:`~bpfcore.hdl.helpers.HelperUnits`.

    Members
    -------
    (CPU ports)
        Every port of the CPU except its helper streams, helper memory and map value ports.
    map_host_req, map_host_resp
        The map memory's host streams (:mod:`bpfcore.sim.rtl.mapdrv` drives them).
    (helper unit ports)
        The helper units' settings and results (seed, clock, processor id, redirect target)
        and the ``trace_printk`` text stream ``printk``, under their own names.

    Attributes
    ----------
    helper_ids : frozenset of int
        The helpers this core answers; a program calling another is rejected at load time.
    """

    def __init__(self, *, program_slots=4096, frames=8, with_divider=True, with_atomics=True,
                 inject_bug=None, n_maps=8, value_bytes=8192, slots=512, buckets=1024,
                 max_key_size=20, max_value_size=64, helpers=None, helper_options=None,
                 pkt_slots=1):
        self.cpu = Cpu(program_slots=program_slots, frames=frames, with_divider=with_divider,
                       with_atomics=with_atomics, inject_bug=inject_bug, pkt_slots=pkt_slots)
        self.maps = MapMemory(n_maps=n_maps, value_bytes=value_bytes, slots=slots,
                              buckets=buckets, max_key_size=max_key_size,
                              max_value_size=max_value_size)
        options = dict(helper_options or {})
        if helpers is not None:
            options["helpers"] = helpers
        unelaborated(self.cpu, self.maps)
        self.helper_units = HelperUnits(map_memory=self.maps, **options)
        unelaborated(self.helper_units)
        self.helper_ids = self.helper_units.helper_ids
        members = {name: member for name, member in self.cpu.signature.members.items()
                   if name not in _CPU_INSIDE}
        for inner, outer in _MAP_OUTSIDE.items():
            members[outer] = self.maps.signature.members[inner]
        self._helper_outside = [name for name in self.helper_units.signature.members
                                if name not in _HELPERS_INSIDE]
        for name in self._helper_outside:
            members[name] = self.helper_units.signature.members[name]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cpu, maps, hu = self.cpu, self.maps, self.helper_units
        m.submodules.cpu = cpu
        m.submodules.maps = maps
        m.submodules.helpers = hu
        wiring.connect(m, cpu.helper_req, hu.req)
        wiring.connect(m, hu.resp, cpu.helper_resp)
        wiring.connect(m, hu.mem, cpu.hmem)
        hu.connect_maps(m, maps)
        wiring.connect(m, cpu.maps, maps.cpu)
        m.d.comb += [hu.data.eq(cpu.result_data), hu.data_end.eq(cpu.result_data_end),
                     hu.run_start.eq(self.start)]

        owners = {name: (cpu, name) for name in self.cpu.signature.members
                  if name not in _CPU_INSIDE}
        owners.update({outer: (maps, inner) for inner, outer in _MAP_OUTSIDE.items()})
        owners.update({name: (hu, name) for name in self._helper_outside})
        pass_through(m, self, owners.__getitem__)
        return m
