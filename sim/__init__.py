"""Everything that runs programs in software, in rooms:

``model/``     the golden model (VM, maps, helpers, what a datapath sees)
``load/``      loaders (assembly, programs, ELF, captures, map files, conformance files, kernel)
``engines/``   run engines behind one interface, chosen by name from one table
``rtl/``       benches of the generated Verilog (cocotb) and of the Amaranth simulation
``gen/``       generators (random programs, test traffic)
``commands/``  one module per ``bpfcore`` command
"""
