"""Drive and observe ``amaranth.lib.stream`` interfaces from async Amaranth testbenches.

Both helpers follow the stream rules (valid held until the transfer; payload stable while valid)
and can add random idle cycles (on the source side) and back-pressure (on the sink side)::

    rng = random.Random(seed)
    await stream_put(ctx, dut.req, {"op": 0, ...}, rng=rng)
    payload = await stream_get(ctx, dut.resp, rng=rng)
"""

__all__ = ["stream_put", "stream_get"]


async def _idle(ctx, rng, chance, longest):
    if rng is not None and chance and rng.random() < chance:
        await ctx.tick().repeat(rng.randint(1, longest))


async def stream_put(ctx, stream, payload, *, rng=None, idle=0.3, longest=3):
    """Send one ``payload`` (a dict for struct payloads, or a value) on ``stream``.

    With ``rng``, first waits 1..``longest`` idle cycles with probability ``idle``.
    """
    await _idle(ctx, rng, idle, longest)
    shape = stream.payload.shape()
    if isinstance(payload, dict) and hasattr(shape, "const"):
        payload = shape.const(payload)
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, stall=0.3, longest=3):
    """Receive one payload from ``stream``; with ``rng``, hold ``ready`` low for 1..``longest``
    cycles with probability ``stall`` first (back-pressure)."""
    await _idle(ctx, rng, stall, longest)
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
