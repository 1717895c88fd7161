"""The fixed backend's activation ops: tanh, hard_sigmoid, hard_swish, swish, softmax, leaky ReLU.

One function per op, ``(program, node, input Codes, ctx) -> Codes`` as in
`qsim.executors.fixed_exec.OP_KERNELS`: the node's ``act`` format, the ``act`` site's
rounding, overflow and counter; kernels and their integer rules in
`qsim.kernels.activations` and `qsim.kernels.softmax`.
"""
from __future__ import annotations

from qsim.kernels import activations, softmax
from qsim.runtime.protocol import Codes


def site_args(prog, node, ctx, site: str = "act") -> dict:
    """What every rescaling kernel of the fixed backend takes: the node's ``act`` format and
    `site`'s rounding, overflow and counter (also the ops of `qsim.executors.fixed_exec`)."""
    np_ = prog.node_plans[node.name]
    return dict(out_fmt=np_.act, rounding=np_.rounding_at(site), overflow=np_.overflow_at(site),
                counter=ctx.counter(site))


def _unary(kernel):
    def run(prog, node, xs, ctx):
        return Codes(kernel(xs[0].codes, in_fmt=xs[0].fmt, **site_args(prog, node, ctx)),
                     prog.node_plans[node.name].act)
    return run


def hard_sigmoid(prog, node, xs, ctx):
    y = activations.hard_sigmoid(xs[0].codes, slope=node.attrs.get("slope", 1 / 6), offset=node.attrs.get("offset", 0.5),
                                 in_fmt=xs[0].fmt, **site_args(prog, node, ctx))
    return Codes(y, prog.node_plans[node.name].act)


def softmax_op(prog, node, xs, ctx):
    y = softmax.softmax(xs[0].codes, axis=node.attrs.get("axis", -1), in_fmt=xs[0].fmt, **site_args(prog, node, ctx))
    return Codes(y, prog.node_plans[node.name].act)


def leaky_relu(prog, node, xs, ctx):
    """ReLU with ``negative_slope`` and/or ``threshold``: the slope is quantized to the node's
    ``weights`` format (site ``weights``), then `qsim.kernels.activations.leaky_relu`."""
    np_ = prog.node_plans[node.name]
    slope = activations.quantize_slope(node.attrs.get("negative_slope", 0.0) or 0.0, np_.weights,
                                       rounding=np_.rounding_at("weights"), overflow=np_.overflow_at("weights"),
                                       counter=ctx.counter("weights"))
    y = activations.leaky_relu(xs[0].codes, slope_code=slope, slope_fmt=np_.weights,
                               threshold=node.attrs.get("threshold", 0.0) or 0.0,
                               max_value=node.attrs.get("max_value"), in_fmt=xs[0].fmt, **site_args(prog, node, ctx))
    return Codes(y, np_.act)


tanh = _unary(activations.tanh)
hard_swish = _unary(activations.hard_swish)
swish = _unary(activations.swish)
