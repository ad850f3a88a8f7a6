"""The Ethernet MAC through the whole ECP5 flow: one RGMII port with the real DDR primitives on
the Colorlight 5A-75B (yosys, nextpnr-ecp5, ecppack). About 40 s; cached by source hash."""

import json

from bpfcore.boards import eth_port


def test_eth_port_meets_its_clocks_and_makes_a_bitstream():
    # Placement seed 1; seeds 2 and 3 are in hdl/eth/README.md.
    summary = eth_port.build(seed=1)
    print(json.dumps(summary))
    fmax = eth_port.domain_fmax(summary)
    assert set(fmax) == set(eth_port.DOMAINS), summary["clocks"]
    # rx0 and tx at 125 MHz, sync (the core domain) at 62.5 MHz.
    for domain, (source, constraint) in eth_port.DOMAINS.items():
        assert fmax[domain] >= constraint, \
            f"{domain} ({source}) reaches {fmax[domain]} MHz, needs {constraint}"
    assert summary["bram"] == 4            # two 512 x 72 FIFOs, two DP16KD each
    assert summary["lut4"] < 2000 and summary["ff"] < 1700
    assert summary["bitstream_bytes"] > 10_000


def test_domain_fmax_reads_the_clock_nets():
    summary = {"clocks": {"$glbnet$clk": {"achieved_mhz": 100.0},
                          "$glbnet$port.mac_tx.tx_clk": {"achieved_mhz": 130.0},
                          "$glbnet$port.rgmii.rx0_clk": {"achieved_mhz": 140.0}}}
    assert eth_port.domain_fmax(summary) == {"sync": 100.0, "tx": 130.0, "rx0": 140.0}
