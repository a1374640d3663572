"""Any ``nn.Module`` read as a graph of cuts and tails: :func:`read_network` gives a :class:`Network`.

See docs/any-network.md. One module per concern, each importing only those above it in this list; every public name
is re-exported here:

- ``_registry``: the transfer functions, pools and opaque library blocks the adapter knows
  (:func:`register_transfer_function`), :class:`Linearising` and :func:`evaluating`;
- ``_fx``: the torch.fx reading (the naming tracer, node capture, residual blocks, default and named cuts);
- ``_constant_variant``: ``lmap_variant="constant"`` (LayerNorm scales and softmax patterns held at their means);
- ``_tails``: tails and segments on the fx path (linearised copies of the graph, batch norm as its affine map);
- ``_hooks``: the forward-hook path for models torch.fx cannot trace (the probe, :class:`HookedModel`);
- ``_affine``: the affine check of a tail (:func:`fit_affine`, :class:`AffineFit`);
- ``network``: :class:`Cut`, :class:`Network` and :func:`read_network`.
"""

from netdyn.models.adapter._affine import AFFINE_SAMPLES, AFFINE_TOLERANCE, AffineFit, fit_affine, is_affine
from netdyn.models.adapter._constant_variant import (
    HeldSums,
    fused_attention,
    fused_attention_error,
    held_layer_norm,
    held_pattern,
    layer_norm_call,
)
from netdyn.models.adapter._hooks import PROBE_SAMPLES, HookedModel, HookedTail
from netdyn.models.adapter._registry import (
    OPAQUE_MODULES,
    Linearising,
    evaluating,
    is_transfer_call,
    register_transfer_function,
)
from netdyn.models.adapter._tails import build_segment, build_tail, transfer_input
from netdyn.models.adapter.network import (
    LMAP_VARIANTS,
    READ_PATHS,
    Cut,
    LmapVariant,
    Network,
    ReadPath,
    TailKind,
    read_network,
)

__all__ = [
    "AFFINE_SAMPLES",
    "AFFINE_TOLERANCE",
    "LMAP_VARIANTS",
    "OPAQUE_MODULES",
    "PROBE_SAMPLES",
    "READ_PATHS",
    "AffineFit",
    "Cut",
    "HeldSums",
    "HookedModel",
    "HookedTail",
    "Linearising",
    "LmapVariant",
    "Network",
    "ReadPath",
    "TailKind",
    "build_segment",
    "build_tail",
    "evaluating",
    "fit_affine",
    "fused_attention",
    "fused_attention_error",
    "held_layer_norm",
    "held_pattern",
    "is_affine",
    "is_transfer_call",
    "layer_norm_call",
    "read_network",
    "register_transfer_function",
    "transfer_input",
]
