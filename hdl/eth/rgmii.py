"""RGMII (v2.0) <-> GMII on the ECP5's DDR I/O registers, or on behavioural models of them.

RGMII carries GMII's byte on four wires at both clock edges: the low nibble at the rising edge,
the high nibble at the falling edge; the control wire carries RX_DV (TX_EN) at the rising edge
and RX_DV xor RX_ER (TX_EN xor TX_ER) at the falling edge.

On the ECP5, ``IDDRX1F`` samples an input at both edges of its clock (``Q0``: the rising edge,
``Q1``: the falling edge after it, both presented at the next rising edge); ``ODDRX1F`` sends
``D0`` while its clock is high and ``D1`` while it is low. The transmit clock is an
``ODDRX1F`` sending 1 then 0, in phase with the data. RGMII wants the clock 1.5-2 ns after the
data edges at the receiver: either the PHY adds that delay (RGMII-ID) or the FPGA does, with a
``DELAYG`` on the receive data and control (``rx_delay``) or on the transmit clock
(``tx_delay``). A delay of 0 instantiates no ``DELAYG``.

With ``primitives="model"`` the same registers are written in Amaranth (a falling-edge domain
per clock), so that the port runs in any simulator; ``"ecp5"`` instantiates the primitives.
"""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._checks import check_domain
from ..unused import rejecting
from .layouts import GmiiSignature, RgmiiSignature

__all__ = ["Rgmii", "check_arguments", "PRIMITIVES", "DELAY_STEP_PS", "MAX_DELAY"]

PRIMITIVES = ("ecp5", "model")
#: A ``DELAYG`` step (ECP5 family data sheet: about 25 ps per tap); 127 taps at most.
DELAY_STEP_PS = 25
MAX_DELAY = 127


class _Ddr:
    """Builds DDR input and output registers in ``m`` for one clock domain, as primitives or as
    behavioural models."""

    def __init__(self, m, domain, primitives):
        self.m = m
        self.domain = domain
        self.primitives = primitives
        self._count = 0
        if primitives == "model":
            fall = f"{domain}_fall"
            m.domains += ClockDomain(fall, clk_edge="neg", reset_less=True, local=True)
            m.d.comb += ClockSignal(fall).eq(ClockSignal(domain))
            self.fall = fall

    def _name(self, kind):
        self._count += 1
        return f"{kind}{self._count}"

    def delay(self, pin, taps):
        """``pin`` through a ``DELAYG`` of ``taps`` steps (none when 0 or in the model)."""
        if taps == 0 or self.primitives == "model":
            return pin
        out = Signal(name=self._name("delayed"))
        self.m.submodules[self._name("delayg")] = Instance(
            "DELAYG", p_DEL_MODE="USER_DEFINED", p_DEL_VALUE=taps, i_A=pin, o_Z=out)
        return out

    def input(self, pin):
        """``(rise, fall)``: ``pin`` sampled at a rising edge and at the falling edge after it,
        both registered at the next rising edge."""
        rise, fall = Signal(name=self._name("q0")), Signal(name=self._name("q1"))
        if self.primitives == "ecp5":
            self.m.submodules[self._name("iddr")] = Instance(
                "IDDRX1F", i_D=pin, i_SCLK=ClockSignal(self.domain), i_RST=Const(0),
                o_Q0=rise, o_Q1=fall)
        else:
            at_rise, at_fall = Signal(name=self._name("r")), Signal(name=self._name("f"))
            self.m.d[self.domain] += [at_rise.eq(pin), rise.eq(at_rise), fall.eq(at_fall)]
            self.m.d[self.fall] += at_fall.eq(pin)
        return rise, fall

    def output(self, pin, high, low):
        """Drive ``pin`` with ``high`` while the clock is high and ``low`` while it is low
        (both taken at the rising edge)."""
        if self.primitives == "ecp5":
            self.m.submodules[self._name("oddr")] = Instance(
                "ODDRX1F", i_D0=high, i_D1=low, i_SCLK=ClockSignal(self.domain), i_RST=Const(0),
                o_Q=pin)
        else:
            first, second, held = (Signal(name=self._name(n)) for n in ("d0", "d1", "d1f"))
            self.m.d[self.domain] += [first.eq(high), second.eq(low)]
            self.m.d[self.fall] += held.eq(second)
            self.m.d.comb += pin.eq(Mux(ClockSignal(self.domain), first, held))


def check_arguments(primitives, rx_delay, tx_delay):
    """Raise ``ValueError`` unless ``primitives`` and the delays are valid :class:`Rgmii`
    arguments."""
    if primitives not in PRIMITIVES:
        raise ValueError(f"primitives must be one of {', '.join(PRIMITIVES)}, "
                         f"not {primitives!r}")
    for name, value in (("rx_delay", rx_delay), ("tx_delay", tx_delay)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DELAY:
            raise ValueError(f"{name} must be an integer from 0 to {MAX_DELAY} DELAYG taps, "
                             f"not {value!r}")


class Rgmii(wiring.Component):
    """RGMII pins <-> GMII, for one PHY.

    Parameters
    ----------
    rx_domain : str
        Domain clocked by the PHY's receive clock (RXC).
    tx_domain : str
        Domain of the transmit side; its clock leaves as TXC.
    primitives : str
        ``"ecp5"`` (IDDRX1F/ODDRX1F/DELAYG) or ``"model"`` (behavioural registers).
    rx_delay, tx_delay : int
        ``DELAYG`` taps (0..127, about 25 ps each) on the receive data/control and on TXC;
        0: no ``DELAYG`` (the PHY delays the clocks). Ignored by the model.

    Members
    -------
    pins : Out(RgmiiSignature)
        The RGMII wires (through the board's I/O buffers).
    rx : Out(GmiiSignature)
        Received bytes in ``rx_domain``, registered.
    tx : In(GmiiSignature)
        Bytes to send, in ``tx_domain``.

    Raises
    ------
    ValueError
        On a bad domain name, ``primitives`` value or delay.
    """

    def __init__(self, *, rx_domain="rx0", tx_domain="tx", primitives="ecp5", rx_delay=0,
                 tx_delay=0):
        with rejecting(self):
            check_domain("rx_domain", rx_domain)
            check_domain("tx_domain", tx_domain)
            check_arguments(primitives, rx_delay, tx_delay)
        self._rx_domain = rx_domain
        self._tx_domain = tx_domain
        self._primitives = primitives
        self._rx_delay = rx_delay
        self._tx_delay = tx_delay
        super().__init__({"pins": Out(RgmiiSignature), "rx": Out(GmiiSignature),
                          "tx": In(GmiiSignature)})

    def elaborate(self, platform):
        m = Module()
        pins = self.pins

        rx = _Ddr(m, self._rx_domain, self._primitives)
        low, high = [], []
        for bit in range(4):
            rise, fall = rx.input(rx.delay(pins.rx_data[bit], self._rx_delay))
            low.append(rise)
            high.append(fall)
        ctl_rise, ctl_fall = rx.input(rx.delay(pins.rx_ctl, self._rx_delay))
        m.d[self._rx_domain] += [self.rx.data.eq(Cat(*low, *high)), self.rx.en.eq(ctl_rise),
                                 self.rx.er.eq(ctl_rise ^ ctl_fall)]

        tx = _Ddr(m, self._tx_domain, self._primitives)
        for bit in range(4):
            tx.output(pins.tx_data[bit], self.tx.data[bit], self.tx.data[bit + 4])
        tx.output(pins.tx_ctl, self.tx.en, self.tx.en ^ self.tx.er)
        clock = Signal()
        tx.output(clock, Const(1), Const(0))
        m.d.comb += pins.tx_clk.eq(tx.delay(clock, self._tx_delay))
        return m
