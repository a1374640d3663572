"""``structure-convnet``, ``structure-resnet`` and ``structure-vit``: the paper's first question (Fig. 3) asked of
three vision families beyond the paper's MLPs.

Does a trained deep net self-organise into nonlinear early layers and linear late ones, with the LP effective
before the L-map? Each experiment trains a few depths of one family (:class:`~netdyn.models.ConvNet`,
:class:`~netdyn.models.ResNet`, :class:`~netdyn.models.ViT`) on handwritten digits and analyses the last
checkpoint of every member through the network adapter (docs/any-network.md): LP and L-map pruning accuracy by cut
with the kind of each L-map tail (for the ViT under both ``lmap_variant`` s), the RPD gradient by cut where it is
defined (the ViT's residual stream has no privileged basis: its RPD is read at the MLPs' GELU cuts), and the
class geometry by cut. The criteria are those of ``structure`` (the same thresholds, stated from the paper before
any run), read off the deepest member of each seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from netdyn._device import resolve_device
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import effective_layer, is_effective
from netdyn.analysis.ranks import rpd_summary
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import (
    Experiment,
    ExperimentConfig,
    ExperimentRuns,
    Member,
    member_name,
    seeded,
    with_params,
)
from netdyn.experiments.criteria import CannotEvaluate, Criterion, rank_correlation
from netdyn.experiments.structure import MIN_TREND, effective_from
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DIGITS_NOTE = (
    "These are handwritten digits (mnist5k: 28 x 28 grey images of centred digits), not natural images: what the "
    "families do here says nothing yet about CIFAR or ImageNet, where conv nets, ResNets and ViTs are usually judged."
)
"""What every report of these experiments says about the data."""

TAIL_WORDS = {"affine": "affine", "piecewise_linear": "p.-linear", "nonlinear": "nonlinear"}
"""How the pruning figure's cut axis names each kind of L-map tail."""


@dataclass(frozen=True)
class FamilyConfig(ExperimentConfig):
    """What the three family experiments share: the data, the training (the paper trains none of these families:
    every choice below is netdyn's) and the analysis."""

    data: DataSpec = field(default_factory=lambda: DataSpec("mnist5k", normalize="none"))
    """mnist5k (5,000 training digits and the official 10,000 test digits when present, else 4,000 and 1,000 held
    out) with pixels in [0, 1] (``normalize="none"``): the unit-norm rows of the MLP experiments give pixels of
    about 0.04, which a conv net at torch's default initialisation barely moves from chance in a few epochs."""
    depths: tuple[int, ...] = (2, 4)
    """The members' depths (see the family's own config for what a depth counts); the criteria read the deepest."""
    width: int = 8
    """Width of the family (see the family's own config)."""
    optimizer: str = "adam"
    """Optimiser: Adam, as the ``structure`` experiment."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size."""
    epochs: float = 4
    """Training length in epochs, fixed for every member (no early stopping)."""
    eval_every: str = "log:3"
    """Evaluation points of the training history (a vision model's evaluation costs more than its training steps;
    the analysis reads the last checkpoint only)."""
    checkpoint_every: str = "log:2"
    """Checkpoints: the first and the last step (the analysis reads the last)."""
    max_samples: int = 1000
    """Training samples of the RPD (a seeded subset)."""

    def model_spec(self, depth: int, seed: int) -> ModelSpec:
        """The model of one member: the family at ``depth``, initial weights from ``seed``."""
        raise NotImplementedError


@dataclass(frozen=True)
class ConvNetFamilyConfig(FamilyConfig):
    """ConvNets: 3x3 conv, batch norm and ReLU blocks with 2x2 average pooling, and a linear head."""

    depths: tuple[int, ...] = (2, 4, 6)
    """Conv blocks of each member (pooling after every block up to depth 3, every second up to 6)."""
    width: int = 8
    """Channels of every block (16 doubles the LP's cost at the full-resolution cuts)."""
    batchnorm: bool = True
    """Batch norm after each convolution (without it the nets train far more slowly at this learning rate; the
    L-map holds it at its running statistics)."""
    pool: str = "avg"
    """Average pooling: linear, so that every tail of the net is affine once the ReLUs are linearised."""

    def model_spec(self, depth: int, seed: int) -> ModelSpec:
        return ModelSpec(arch="convnet", width=self.width, depth=depth, batchnorm=self.batchnorm, pool=self.pool,
                         seed=seed)


@dataclass(frozen=True)
class ResNetFamilyConfig(FamilyConfig):
    """CIFAR-style ResNets of torchvision's BasicBlocks (stages of widths w, 2w, 4w), batch norm in every block."""

    depths: tuple[int, ...] = (1, 2)
    """Basic blocks per stage of each member (1: blocks (1, 1, 1); 2: (2, 2, 2))."""
    width: int = 4
    """Channels of the first stage (8 made the LP at the three full-resolution cuts take about a minute per net)."""
    stages: int = 3
    """Stages (the first at full resolution, each next one at half)."""

    def model_spec(self, depth: int, seed: int) -> ModelSpec:
        return ModelSpec(arch="resnet", width=self.width, depth=self.stages, blocks=depth, seed=seed)


@dataclass(frozen=True)
class ViTFamilyConfig(FamilyConfig):
    """Small ViTs: 7x7 patches, a class token, pre-LN blocks of explicit softmax attention and a GELU MLP."""

    depths: tuple[int, ...] = (2, 4)
    """Transformer blocks of each member."""
    width: int = 32
    """Width of the residual stream."""
    patch: int = 7
    """Side of a patch (16 patches of a 28-pixel digit, 17 tokens with the class token)."""
    heads: int = 4
    """Attention heads per block."""
    mlp_dim: int = 64
    """Hidden width of each block's MLP (the GELU cuts, where the RPD is defined)."""
    epochs: float = 15
    """Training length in epochs (a ViT learns digits more slowly per epoch than a conv net: 0.76 test accuracy
    after 4 epochs at depth 4)."""

    def model_spec(self, depth: int, seed: int) -> ModelSpec:
        return ModelSpec(arch="vit", width=self.width, depth=depth, patch=self.patch, heads=self.heads,
                         mlp_dim=self.mlp_dim, seed=seed)


def family_members(config: FamilyConfig) -> list[Member]:
    """One member per depth and seed, trained alone (populations take netdyn MLPs only)."""
    members = []
    for depth in config.depths:
        for seed in seeded(config):
            spec = RunSpec(model=config.model_spec(depth, seed), data=config.data, train=config.train_config(seed))
            params = {"depth": depth, "seed": seed}
            members.append(Member(member_name(**params), spec, params))
    return members


def gelu_cuts(depth: int) -> list[str]:
    """The ViT's activation cuts: the GELU output of each block's MLP (``blocks.i.mlp.1``)."""
    return [f"blocks.{i}.mlp.1" for i in range(depth)]


class StructureFamily(Experiment[FamilyConfig]):
    """The shared body of the three experiments; each subclass names its family and scales."""

    family: ClassVar[str]
    """The family's name in titles (``ConvNet``)."""
    lmap_variants: ClassVar[tuple[str, ...]] = ("keep",)
    """The L-map variants analysed (the ViT's LayerNorm and attention make "constant" differ from "keep")."""
    figure = "beyond Fig. 3"
    columns = {
        "network": ("depth", "seed", "split", "accuracy"),
        "lmap": ("depth", "seed", "layer", "cut", "split", "accuracy", "tail", "variant"),
        "lp": ("depth", "seed", "layer", "cut", "split", "accuracy"),
        "rpd_summary": ("depth", "seed", "layer", "cut", "gradient", "top_mass", "order_index", "reason"),
        "class_geometry": ("depth", "seed", "layer", "cut", "cos_dist_mean", "centre_similarity", "nc1"),
    }
    nullable = {"class_geometry": ("nc1",)}

    def members(self, config: FamilyConfig) -> list[Member]:
        return family_members(config)

    def _analysis_config(self, config: FamilyConfig, variant: str, quantities: tuple[str, ...]) -> AnalysisConfig:
        return AnalysisConfig(quantities=quantities, basins=False, max_samples=config.max_samples,
                              lmap_variant=variant, device=config.device)

    def _rpd_table(self, runs: ExperimentRuns, config: FamilyConfig) -> pd.DataFrame | None:
        """The RPD summary at cuts other than the default ones (None: the default cuts' analysis holds it)."""
        return None

    def tables(self, runs: ExperimentRuns, config: FamilyConfig) -> dict[str, pd.DataFrame]:
        own_rpd = self._rpd_table(runs, config)
        first = ("lmap", "lp", "class_geometry") + (("rpd",) if own_rpd is None else ())
        names = ("network", "lmap", "lp", "class_geometry") + (("rpd_summary",) if own_rpd is None else ())
        tables = runs.tables(names, self._analysis_config(config, self.lmap_variants[0], first))
        for variant in self.lmap_variants[1:]:
            other = runs.tables(("lmap",), self._analysis_config(config, variant, ("lmap",)))["lmap"]
            tables["lmap"] = pd.concat([tables["lmap"], other], ignore_index=True)
        if own_rpd is not None:
            tables["rpd_summary"] = own_rpd
        return {name: table.drop(columns="step", errors="ignore") for name, table in tables.items()}

    def figures(self, tables: dict[str, pd.DataFrame], config: FamilyConfig) -> dict[str, Figure]:
        """Per depth: pruning by cut with the tail kinds marked, the RPD gradient by cut and the class geometry by
        cut, each the median over seeds with the min-max band."""
        figs: dict[str, Figure] = {}
        for depth in sorted(set(tables["network"]["depth"])):
            t = {name: table[table["depth"] == depth] for name, table in tables.items()}
            figs[f"pruning_depth{depth}"] = self._pruning_figure(t, depth)
            figs[f"rpd_gradient_depth{depth}"] = self._rpd_figure(t, depth)
            figs[f"class_geometry_depth{depth}"] = self._geometry_figure(t, depth)
        return figs

    def _pruning_figure(self, t: dict[str, pd.DataFrame], depth: int) -> Figure:
        from netdyn import plots
        from netdyn.plots.seeds import lines_labelled, seed_band, seed_note

        n_seeds = t["network"]["seed"].nunique()
        lmap = t["lmap"]
        first = lmap[lmap["variant"] == self.lmap_variants[0]]
        lmap_med, lmap_low, lmap_high = _over_seeds(first, ["layer", "split"], ["accuracy"])
        lp_med, lp_low, lp_high = _over_seeds(t["lp"], ["layer", "split"], ["accuracy"])
        network = _over_seeds(t["network"], ["split"], ["accuracy"])[0]
        fig = plots.plot_layer_accuracy(lmap_med, lp_med, network, split="test")
        ax = fig.axes[0]
        bands = [("L-map pruning", lmap_low, lmap_high), ("LP pruning", lp_low, lp_high)]
        for variant in self.lmap_variants[1:]:
            bands.append(_extra_lmap_line(ax, lmap[lmap["variant"] == variant], variant, network))
        if n_seeds > 1:
            for label, low, high in bands:
                seed_band(lines_labelled(fig, label)[0], low.xs("test", level="split")["accuracy"],
                          high.xs("test", level="split")["accuracy"])
        if len(self.lmap_variants) > 1:
            from matplotlib.lines import Line2D

            lines_labelled(fig, "L-map pruning")[0].set_label(f"L-map pruning ({self.lmap_variants[0]})")
            filled = Line2D([], [], ls="none", marker="o", color="0.3", ms=7, label="filled: pruning effective")
            ax.legend(handles=[*ax.get_legend_handles_labels()[0], filled], loc="lower right", fontsize="small")
        _cut_axis(ax, lmap, self.lmap_variants)
        ax.set_title(f"{self.family} depth {depth}: LP and L-map pruning by cut\n(test; {seed_note(n_seeds)})")
        return fig

    def _rpd_figure(self, t: dict[str, pd.DataFrame], depth: int) -> Figure:
        from netdyn import plots
        from netdyn.plots.seeds import lines_labelled, seed_band, seed_note

        rows = t["rpd_summary"]
        n_seeds = rows["seed"].nunique()
        summary, low, high = _over_seeds(rows, ["layer"], ["gradient", "order_index"])
        fig = plots.plot_rpd_summary(summary)
        if n_seeds > 1:
            for label, column in (("RPD gradient", "gradient"), ("order index", "order_index")):
                seed_band(lines_labelled(fig, label)[0], low[column], high[column])
        for ax in fig.axes:
            ax.set_xticks(*_cut_ticks(rows), fontsize="x-small")
        fig.axes[-1].set_xlabel(self._rpd_cut_label())
        fig.axes[0].set_title(f"{self.family} depth {depth}: RPD gradient by cut\n({seed_note(n_seeds)})")
        return fig

    def _rpd_cut_label(self) -> str:
        return "cut l (its module)"

    def _geometry_figure(self, t: dict[str, pd.DataFrame], depth: int) -> Figure:
        from netdyn import plots
        from netdyn.plots.seeds import lines_labelled, seed_band, seed_note

        rows = t["class_geometry"]
        n_seeds = rows["seed"].nunique()
        columns = ["cos_dist_mean", "cos_dist_q25", "cos_dist_q75", "centre_similarity"]
        geometry, low, high = _over_seeds(rows, ["layer"], columns)
        fig = plots.plot_class_geometry(geometry)
        if n_seeds > 1:
            seed_band(lines_labelled(fig, "distance to own class centre (mean)")[0], low["cos_dist_mean"],
                      high["cos_dist_mean"], style="bars")
            seed_band(lines_labelled(fig, "similarity between class centres (mean)")[0], low["centre_similarity"],
                      high["centre_similarity"])
        fig.axes[0].set_xticks(*_cut_ticks(rows), fontsize="x-small")
        fig.axes[0].set_xlabel("cut l (its module; 0 = input)")
        note = (f"median of {n_seeds} seeds; min to max over seeds: bars, red band" if n_seeds > 1
                else seed_note(n_seeds))
        fig.axes[0].set_title(f"{self.family} depth {depth}: class geometry by cut\n({note};\nblue band: the "
                              "samples' interquartile range, median over seeds)", fontsize="medium")
        return fig

    def criteria(self, config: FamilyConfig) -> list[Criterion]:
        return family_criteria(self.lmap_variants, self.rpd_where)

    rpd_where: ClassVar[str] = "every cut after the input"
    """Where the RPD is read (the criteria's words)."""

    def summary(self, tables: dict[str, pd.DataFrame], config: FamilyConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"analysed_depth": max(config.depths), "family": self.family}
        per_seed: dict[str, list[Any]] = {}
        for seed in sorted(set(tables["network"]["seed"])):
            for key, value in _seed_summary(tables, seed, self.lmap_variants).items():
                per_seed.setdefault(key, []).append(value)
        out.update(per_seed)
        final = tables["network"][tables["network"]["split"] == "test"]
        out["test_accuracy_by_depth"] = {
            f"depth{depth}": float(acc) for depth, acc in final.groupby("depth")["accuracy"].median().items()
        }
        return out

    def notes(self, config: FamilyConfig) -> str:
        return f"{DIGITS_NOTE}\n{super().notes(config)}"


def _over_seeds(table: pd.DataFrame, keys: list[str], values: list[str]) -> tuple[pd.DataFrame, Any, Any]:
    """The median over seeds of ``values`` per ``keys``, and the grouped minimum and maximum (indexed by ``keys``)."""
    grouped = table.groupby(keys, sort=True)[values]
    return grouped.median().reset_index(), grouped.min(), grouped.max()


def _cut_ticks(rows: pd.DataFrame) -> tuple[list[int], list[str]]:
    """The x ticks of a by-cut figure: each layer with its cut's name below."""
    cuts = rows.drop_duplicates("layer").sort_values("layer")
    return cuts["layer"].tolist(), [f"{layer}\n{cut}" for layer, cut in zip(cuts["layer"], cuts["cut"], strict=True)]


def _extra_lmap_line(ax: Axes, rows: pd.DataFrame, variant: str, network: pd.DataFrame) -> tuple[str, Any, Any]:
    """Draw the median L-map of a second variant on the pruning axes (filled where effective, as the others);
    its label and min / max over seeds."""
    median, low, high = _over_seeds(rows, ["layer", "split"], ["accuracy"])
    test = median[median["split"] == "test"].sort_values("layer")
    label = f"L-map pruning ({variant})"
    ax.plot(test["layer"].to_numpy(), test["accuracy"].to_numpy(), marker="^", color="C2", mfc="white", lw=1.5,
            label=label)
    accuracy = float(network.set_index("split")["accuracy"]["test"])
    effective = test[is_effective(test["accuracy"], accuracy)]
    ax.plot(effective["layer"].to_numpy(), effective["accuracy"].to_numpy(), ls="none", marker="^", color="C2",
            ms=7, label=f"_{label} effective")
    return label, low, high


def _cut_axis(ax: Axes, lmap: pd.DataFrame, variants: tuple[str, ...]) -> None:
    """Name each cut on the x axis with the kind of its L-map tail under each variant (one line each)."""
    cuts = lmap[lmap["variant"] == variants[0]].drop_duplicates("layer").sort_values("layer")
    labels = []
    for layer, cut in zip(cuts["layer"], cuts["cut"], strict=True):
        kinds = [TAIL_WORDS[str(lmap[(lmap["layer"] == layer) & (lmap["variant"] == v)]["tail"].iloc[0])]
                 for v in variants]  # fmt: skip
        tails = kinds if len(variants) == 1 else [f"{v}: {kind}" for v, kind in zip(variants, kinds, strict=True)]
        labels.append("\n".join([str(layer), str(cut), *tails]))
    ax.set_xticks(cuts["layer"].tolist(), labels, fontsize="x-small")
    ax.set_xlabel("cut l after which the network is replaced (0 = input), its module, its L-map tail's kind",
                  fontsize="small")


def _seed_summary(tables: Mapping[str, pd.DataFrame], seed: int, variants: tuple[str, ...]) -> dict[str, Any]:
    """The headline numbers of one seed's deepest member."""
    deepest = int(tables["network"]["depth"].max())
    t = {name: table[(table["depth"] == deepest) & (table["seed"] == seed)] for name, table in tables.items()}
    acc = float(t["network"].set_index("split")["accuracy"]["test"])
    out: dict[str, Any] = {"test_accuracy": acc,
                           "lp_effective_from": effective_layer(t["lp"], acc, rule="from")}
    for variant in variants:
        rows = t["lmap"][t["lmap"]["variant"] == variant]
        out[f"lmap_effective_from_{variant}"] = effective_layer(rows, acc, rule="from")
    rpd = t["rpd_summary"].sort_values("layer")["gradient"]
    out["rpd_gradient_first"], out["rpd_gradient_last"] = float(rpd.iloc[0]), float(rpd.iloc[-1])
    geometry = t["class_geometry"][t["class_geometry"]["layer"] >= 1].sort_values("layer")["cos_dist_mean"]
    out["cos_dist_first"], out["cos_dist_last"] = float(geometry.iloc[0]), float(geometry.iloc[-1])
    return out


# ------------------------------------------------------------------------------------------------ families
class StructureConvNet(StructureFamily):
    name = "structure-convnet"
    family = "ConvNet"
    shows = "the standard structure asked of BN ConvNets of 2-6 blocks on digits: pruning, tails, RPD, geometry"
    claim = (
        "The paper's first question (Fig. 3) asked of a family it did not study: does a trained deep conv net "
        "self-organise into nonlinear early layers and linear late ones (L-map pruning effective at a cut before "
        "the logits), with LP pruning effective before L-map pruning, an RPD gradient growing with depth and "
        "samples gathering at their class centres? " + DIGITS_NOTE
    )
    measured = {
        "smoke": "6.7 s (2 seeds; 2 CPU cores shared with another job, load ~3.5, 1 thread, 2026-12-06)",
        "small": "5.2 min (313.6 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
        "paper": "not run (meant for a GPU)",
    }
    scales = {
        "smoke": ConvNetFamilyConfig(
            seeds=2, data=DataSpec("mnist5k", train_size=300, test_size=200, normalize="none"), depths=(1, 2),
            width=4, epochs=1, eval_every="log:2", max_samples=200,
        ),
        "small": ConvNetFamilyConfig(),
        "paper": ConvNetFamilyConfig(data=DataSpec("mnist", normalize="none"), depths=(2, 4, 6, 8), width=32,
                                     epochs=10, max_samples=2000),
    }


class StructureResNet(StructureFamily):
    name = "structure-resnet"
    family = "ResNet"
    shows = "the standard structure asked of CIFAR-style ResNets (1 or 2 blocks per stage) on digits"
    claim = (
        "The paper's first question (Fig. 3) asked of a family it did not study: does a trained ResNet, read at "
        "its residual stream after each block, self-organise into nonlinear early blocks and linear late ones "
        "(L-map pruning effective at a cut before the logits), with LP pruning effective before L-map pruning, an "
        "RPD gradient growing with depth and samples gathering at their class centres? " + DIGITS_NOTE
    )
    measured = {
        "smoke": "6.5 s (2 seeds; 2 CPU cores shared with another job, load ~3.5, 1 thread, 2026-12-06)",
        "small": "6.1 min (365.9 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
        "paper": "not run (meant for a GPU)",
    }
    scales = {
        "smoke": ResNetFamilyConfig(
            seeds=2, data=DataSpec("mnist5k", train_size=300, test_size=200, normalize="none"), depths=(1,),
            width=2, stages=2, epochs=1, eval_every="log:2", max_samples=200,
        ),
        "small": ResNetFamilyConfig(),
        "paper": ResNetFamilyConfig(data=DataSpec("mnist", normalize="none"), depths=(1, 2, 3), width=16,
                                    epochs=10, max_samples=2000),
    }


class StructureViT(StructureFamily):
    name = "structure-vit"
    family = "ViT"
    lmap_variants = ("keep", "constant")
    rpd_where = "each block's GELU cut (blocks.i.mlp.1; the residual stream has no privileged basis)"
    shows = "the standard structure asked of small ViTs on digits, L-map with LayerNorm/attention kept and constant"
    claim = (
        "The paper's first question (Fig. 3) asked of a family it did not study: does a trained vision "
        "transformer, read at its residual stream after each block, self-organise into nonlinear early blocks "
        "and linear late ones (L-map pruning effective at a cut before the logits, with LayerNorm and attention "
        "kept, and with them held at their training-set means), with LP pruning effective before L-map pruning, "
        "an RPD gradient (at the MLPs' GELU cuts) growing with depth and samples gathering at their class "
        "centres? " + DIGITS_NOTE
    )
    measured = {
        "smoke": "8.0 s (2 seeds; 2 CPU cores shared with another job, load ~3.5, 1 thread, 2026-12-06)",
        "small": "2.9 min (174.9 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
        "paper": "not run (meant for a GPU)",
    }
    scales = {
        "smoke": ViTFamilyConfig(
            seeds=2, data=DataSpec("mnist5k", train_size=300, test_size=200, normalize="none"), depths=(1, 2),
            width=8, heads=2, mlp_dim=8, epochs=1, eval_every="log:2", max_samples=200,
        ),
        "small": ViTFamilyConfig(),
        "paper": ViTFamilyConfig(data=DataSpec("mnist", normalize="none"), depths=(2, 4, 6), width=64,
                                 mlp_dim=128, epochs=20, max_samples=2000),
    }

    def _rpd_table(self, runs: ExperimentRuns, config: FamilyConfig) -> pd.DataFrame:
        """The RPD summary of each member's last checkpoint at its GELU cuts (layer i + 1: block i's)."""
        device = resolve_device(config.device)
        parts = []
        for member in runs:
            if runs.diverged(member):
                continue
            net = runs.run(member).model("last").to(device)
            table = rpd_summary(net, runs.data(member), max_samples=config.max_samples,
                                cuts=gelu_cuts(int(member.params["depth"])))
            parts.append(with_params(table, member))
        return pd.concat(parts, ignore_index=True)

    def _rpd_cut_label(self) -> str:
        return "GELU cut l (block l - 1's MLP)"


# ------------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 3 before any run of these experiments, with the thresholds of the
# `structure` experiment's criteria (stated there before its runs); read off the deepest member of each seed.


def _rows(tables: Mapping[str, pd.DataFrame], name: str, seed: int, variant: str | None = None) -> pd.DataFrame:
    table = tables.get(name)
    if table is None or table.empty:
        raise CannotEvaluate(f"no {name} table")
    deepest = int(table["depth"].max())
    rows = table[(table["depth"] == deepest) & (table["seed"] == seed)]
    if variant is not None:
        rows = rows[rows["variant"] == variant]
    if rows.empty:
        raise CannotEvaluate(f"no {name} rows of the deepest net of seed {seed} (it diverged or was not analysed)")
    return rows


def _effective_from(tables: Mapping[str, pd.DataFrame], kind: str, seed: int, variant: str | None) -> int:
    """The cut from which on ``kind`` ("lp" or "lmap") pruning is effective on the test set."""
    return effective_from(_rows(tables, "network", seed), _rows(tables, kind, seed, variant), kind)


def lp_before_lmap(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Cuts between where LP pruning and where L-map pruning become effective (positive: LP earlier)."""
    return float(_effective_from(tables, "lmap", seed, variant) - _effective_from(tables, "lp", seed, None))


def linear_tail(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Cuts after the one from which on L-map pruning is effective (0: only the last cut, whose tail is the head)."""
    last = int(_rows(tables, "lmap", seed, variant)["layer"].max())
    return float(last - _effective_from(tables, "lmap", seed, variant))


def rpd_gradient_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Spearman correlation of the RPD gradient with the cut's index, over the cuts where it is defined."""
    rows = _rows(tables, "rpd_summary", seed)
    rows = rows[(rows["layer"] >= 1) & rows["gradient"].notna()].sort_values("layer")
    return rank_correlation(rows["layer"], rows["gradient"], "cuts")  # the cuts where the RPD is defined


def cos_dist_ratio(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Mean cosine distance of a sample to its class centre at the last cut over that at the first after the input."""
    rows = _rows(tables, "class_geometry", seed).set_index("layer")["cos_dist_mean"]
    hidden = rows[rows.index >= 1].sort_index()
    if len(hidden) < 2 or hidden.iloc[0] == 0:
        raise CannotEvaluate("fewer than two cuts after the input, or no spread at the first")
    return float(hidden.iloc[-1] / hidden.iloc[0])


def family_criteria(variants: tuple[str, ...], rpd_where: str) -> list[Criterion]:
    """The criteria of a family experiment: the L-map ones once per ``lmap_variant`` analysed (named after it when
    there are several), the RPD read at ``rpd_where``."""
    net = "the deepest member"
    deepest = f"{net}, test set, effective = within 0.005 of the network's accuracy (see docs/quantities.md#l-map)"
    out: list[Criterion] = []
    for variant in variants:
        suffix = f"_{variant}" if len(variants) > 1 else ""
        tails = f"; L-map tails with lmap_variant {variant!r}" if len(variants) > 1 else ""
        out += [
            Criterion(
                f"lp_before_lmap{suffix}",
                "Fig. 3(a, b): 'LP achieves effective pruning in much earlier layers ... L-map pruning becomes "
                "effective in later layers'",
                f"cut from which on L-map pruning is effective minus the cut from which on LP pruning is; {deepest}"
                f"{tails}",
                ">=", 1, partial(lp_before_lmap, variant=variant),
            ),
            Criterion(
                f"linear_tail{suffix}",
                "Fig. 3(a, b): 'the final sections of the DNN evolve into a pure LNN, equivalent to a linear "
                "perceptron' (early layers nonlinear, late ones linear)",
                f"cuts after the one from which on L-map pruning is effective (at least one: effective before the "
                f"last cut, whose tail is the head alone); {deepest}{tails}",
                ">=", 1, partial(linear_tail, variant=variant),
            ),
        ]
    return out + [
        Criterion(
            "rpd_gradient_grows",
            "Fig. 3(c, d): 'the RPD gradient increases with layer depth'",
            f"Spearman correlation of the RPD gradient with the cut over {rpd_where} of {net}",
            ">=", MIN_TREND, rpd_gradient_trend,
        ),
        Criterion(
            "samples_cluster",
            "Fig. 3(e, f): 'samples cluster towards the center of their respective classes as depth increases'",
            "mean cosine distance of a training sample to its class centre at the last cut over that at the first "
            f"cut after the input (at most half); {net}",
            "<=", 0.5, cos_dist_ratio,
        ),
    ]


EXPERIMENTS = (StructureConvNet, StructureResNet, StructureViT)
"""The three experiments of this module, in the order ``netdyn reproduce all`` runs them."""
