"""Signal attributes for Yosys.

``KEEP`` on an intermediate sum stops Yosys's ``alumacc`` from merging chained additions into one
multi-operand sum, which ``maccmap`` builds from carry-save layers of LUTs in front of one adder:
kept, each addition is a ripple adder on the ECP5 carry chain (one COMB site per bit), and an
operand that is ready early can be summed before a late one arrives.
"""

__all__ = ["KEEP"]

KEEP = {"keep": 1}
