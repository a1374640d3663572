"""``structure`` (paper Fig. 3): the standard structure of deep BN ReLU nets, plain and residual.

LP and L-map pruning accuracy by layer, the RPD of representative layers with the neuron-mode census and the
distribution of rho beside the RPD gradient, the cosine distance of the first 100 training samples of digit 5
to their class centre and the similarity of the class centres by layer, and the training curves (test loss,
test and training accuracy against steps) for several depths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import effective_layer
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentConfig, ExperimentRuns, Member, member_name, seeded
from netdyn.experiments.criteria import CannotEvaluate, Criterion, rank_correlation
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VARIANTS = {"none": "plain", "pre": "residual"}


@dataclass(frozen=True)
class StructureConfig(ExperimentConfig):
    """Deep BN ReLU MLPs trained on MNIST digits (the paper gives the architecture family, not the training
    settings: those below are netdyn's choices)."""

    width: int = 256
    """Neurons per hidden layer (the paper's deep nets are 1024 wide)."""
    depths: tuple[int, ...] = (2, 4, 6, 8, 10)
    """Depths trained for the training curves; the deepest is analysed layer by layer (depth 10 = the paper's
    12-layer net)."""
    residuals: tuple[str, ...] = ("none", "pre")
    """Plain and residual (skip into the local field after batch norm, the paper's Eq. 2)."""
    optimizer: str = "adam"
    """Optimiser (the paper does not say; Adam as in its Fig. 6)."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size."""
    epochs: float = 30
    """Training length in epochs."""
    eval_every: str = "log:40"
    """Evaluation points of the training curves."""
    checkpoint_every: str = "log:8"
    """Checkpoints (the analysis reads the last one)."""
    bn_eval: str = "both"
    """Evaluate with running and with batch statistics (the curves show running; bn-grokking compares)."""
    max_samples: int = 2000
    """Training samples of the RPD and the neuron modes."""


def member_specs(config: StructureConfig, depths: tuple[int, ...] | None = None) -> list[Member]:
    """The member runs of ``structure`` (also the runs of ``bn-grokking`` and ``double-descent``)."""
    members = []
    for residual in config.residuals:
        for depth in depths or config.depths:
            if residual != "none" and depth < 3:
                continue  # a residual pair needs depth >= 3
            for seed in seeded(config):
                spec = RunSpec(
                    model=ModelSpec(width=config.width, depth=depth, batchnorm=True, residual=residual, seed=seed),
                    data=config.data,
                    train=config.train_config(seed),
                )
                params = {"variant": VARIANTS[residual], "depth": depth, "seed": seed}
                members.append(Member(member_name(**params), spec, params))
    return members


class Structure(Experiment[StructureConfig]):
    name = "structure"
    figure = "Fig. 3"
    shows = "standard structure of deep BN ReLU nets, plain and residual: pruning, RPD, class geometry, curves"
    claim = (
        "A trained deep network self-organises into a standard structure: LP pruning becomes effective after a "
        "few layers (the classes are linearly separable early), while L-map pruning becomes effective only in "
        "the later layers, which have turned into a linear network. The RPD gradient grows with depth (more "
        "order-preserving neurons in later layers); samples gather at their class centres and the centres "
        "become dissimilar with depth. With batch norm, test accuracy can jump late (grokking) and test loss "
        "can rise before it falls (double descent), more so in deeper nets."
    )
    measured = {
        "smoke": "8.6 s (2 seeds; 2 CPU cores shared with other jobs, load ~5, 1 thread, 2026-12-06)",
        "small": "13.2 min (793.1 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
        "paper": "not run (meant for a GPU; none was lent to this task)",
    }
    columns = {
        "history": ("member", "variant", "depth", "seed", "step", "split", "bn_mode", "loss", "accuracy"),
        "network": ("variant", "depth", "seed", "split", "accuracy"),
        "lmap": ("variant", "depth", "seed", "layer", "split", "accuracy"),
        "lp": ("variant", "depth", "seed", "layer", "split", "accuracy"),
        "rpd": ("variant", "depth", "seed", "layer", "q", "density"),
        "rpd_summary": ("variant", "depth", "seed", "layer", "gradient", "top_mass", "order_index"),
        "neuron_mode_census": ("variant", "depth", "seed", "layer", "opm", "npm", "inactive", "rho_median"),
        "class_geometry": ("variant", "depth", "seed", "layer", "cos_dist_mean", "centre_similarity", "nc1"),
        "class_geometry_samples": ("variant", "depth", "seed", "layer", "sample", "label", "cos_dist"),
    }
    nullable = {"class_geometry": ("nc1",), "neuron_mode_census": ("rho_mean", "rho_q10", "rho_q25", "rho_median",
                                                                   "rho_q75", "order_index_mean")}
    scales = {
        "smoke": StructureConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), width=32, depths=(2, 4), epochs=3,
            eval_every="log:8", checkpoint_every="log:3", max_samples=300,
        ),
        "small": StructureConfig(),
        "paper": StructureConfig(
            data=DataSpec("mnist"), width=1024, depths=(2, 4, 6, 8, 10), batch_size=300, epochs=20,
        ),
    }

    def members(self, config: StructureConfig) -> list[Member]:
        return member_specs(config)

    def _analysis_config(self, config: StructureConfig) -> AnalysisConfig:
        return AnalysisConfig(
            quantities=("lmap", "lp", "rpd", "neuron_modes", "class_geometry"),
            basins=False,
            max_samples=config.max_samples,
            device=config.device,
        )

    def tables(self, runs: ExperimentRuns, config: StructureConfig) -> dict[str, pd.DataFrame]:
        deepest = [m for m in runs if m.params["depth"] == max(config.depths)]
        names = ("network", "lmap", "lp", "rpd", "rpd_summary", "neuron_mode_census", "class_geometry",
                 "class_geometry_samples")
        tables = runs.tables(names, self._analysis_config(config), members=deepest)
        tables["history"] = pd.concat([runs.history(m) for m in runs], ignore_index=True)
        return {name: table.drop(columns="step", errors="ignore") if name != "history" else table
                for name, table in tables.items()}

    def figures(self, tables: dict[str, pd.DataFrame], config: StructureConfig) -> dict[str, Figure]:
        """Per variant: the layer-wise panels of the deepest net (median over seeds with the min-max band where
        a curve aggregates; RPD densities, neuron modes and the single samples of digit 5 from the first seed,
        said in the title) and the training curves by depth (first seed, said in the title)."""
        from netdyn import plots
        from netdyn.plots.seeds import one_seed_note

        figs: dict[str, Figure] = {}
        for variant, (a, c, e, g) in (("plain", "aceg"), ("residual", "bdfh")):
            if variant not in set(tables["history"]["variant"]):
                continue
            suffix = "" if variant == "plain" else "_residual"
            if "lmap" in tables and variant in set(tables["lmap"]["variant"]):
                t = {name: _variant(table, variant) for name, table in tables.items() if name != "history"}
                figs[f"fig3{a}_pruning{suffix}"] = _pruning_figure(t, variant, max(config.depths))
                figs.update({f"fig3{c}_{name}{suffix}": fig for name, fig in _rpd_figures(t, variant, config).items()})
                figs[f"fig3{e}_class_geometry{suffix}"] = _geometry_figure(t, variant)
            history = tables["history"]
            seeds = sorted(set(history["seed"]))
            curves = history[(history["variant"] == variant) & (history["seed"] == seeds[0])
                             & (history["bn_mode"] == "running")]  # fmt: skip
            fig = plots.plot_training(curves, by="depth")
            fig.axes[0].set_title(f"{variant.capitalize()} BN ReLU nets: training curves by depth\n(running "
                                  f"statistics; {one_seed_note(len(seeds), seeds[0])})")
            figs[f"fig3{g}_training{suffix}"] = fig
        return figs

    def criteria(self, config: StructureConfig) -> list[Criterion]:
        return structure_criteria(config)

    def summary(self, tables: dict[str, pd.DataFrame], config: StructureConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"analysed_depth": max(config.depths)}
        for variant in ("plain", "residual"):
            if "network" not in tables or variant not in set(tables["network"]["variant"]):
                continue
            per_seed = []
            for seed in sorted(set(tables["network"]["seed"])):
                t = {name: _one(table, variant, seed) for name, table in tables.items() if name != "history"}
                acc = float(t["network"].set_index("split")["accuracy"]["test"])
                rs, geo = t["rpd_summary"].sort_values("layer"), t["class_geometry"].sort_values("layer")
                hidden = geo[geo["layer"] >= 1]
                per_seed.append({
                    "test_accuracy": acc,
                    "lmap_effective_earliest": effective_layer(t["lmap"], acc, rule="earliest"),
                    "lp_effective_earliest": effective_layer(t["lp"], acc, rule="earliest"),
                    "rpd_gradient_first": float(rs["gradient"].iloc[0]),
                    "rpd_gradient_last": float(rs["gradient"].iloc[-1]),
                    "centre_similarity_first": float(hidden["centre_similarity"].iloc[0]),
                    "centre_similarity_last": float(hidden["centre_similarity"].iloc[-1]),
                    "cos_dist_first": float(hidden["cos_dist_mean"].iloc[0]),
                    "cos_dist_last": float(hidden["cos_dist_mean"].iloc[-1]),
                })
            first = per_seed[0]
            for key in first:
                values = [row[key] for row in per_seed]
                out[f"{variant}_{key}"] = values[0] if len(values) == 1 else values
            lp, lmap = first["lp_effective_earliest"], first["lmap_effective_earliest"]
            out[f"{variant}_lp_before_lmap"] = lp is not None and (lmap is None or lp < lmap)
        history = tables["history"]
        final = history[(history["split"] == "test") & (history["bn_mode"] == "running")]
        final = final[final["step"] == final.groupby("member")["step"].transform("max")]
        out["final_test_accuracy_by_depth"] = {
            f"{row.variant}-depth{row.depth}": float(row.accuracy)
            for row in final.groupby(["variant", "depth"], as_index=False)["accuracy"].mean().itertuples()
        }
        return out


def _variant(table: pd.DataFrame, variant: str) -> pd.DataFrame:
    """One variant's rows of every seed, without the member columns other than ``seed``."""
    return table[table["variant"] == variant].drop(columns=["member", "variant", "depth"])


def _over_seeds(table: pd.DataFrame, keys: list[str], values: list[str]) -> tuple[pd.DataFrame, Any, Any]:
    """The median over seeds of ``values`` per ``keys`` (a table the plot functions take), and the grouped
    minimum and maximum (indexed by ``keys``)."""
    grouped = table.groupby(keys, sort=True)[values]
    return grouped.median().reset_index(), grouped.min(), grouped.max()


def _first_seed(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["seed"] == table["seed"].min()].drop(columns="seed")


def _pruning_figure(t: dict[str, pd.DataFrame], variant: str, depth: int) -> Figure:
    from netdyn import plots
    from netdyn.plots.seeds import lines_labelled, seed_band, seed_note

    n_seeds = t["network"]["seed"].nunique()
    lmap, lmap_low, lmap_high = _over_seeds(t["lmap"], ["layer", "split"], ["accuracy"])
    lp, lp_low, lp_high = _over_seeds(t["lp"], ["layer", "split"], ["accuracy"])
    network = _over_seeds(t["network"], ["split"], ["accuracy"])[0]
    fig = plots.plot_layer_accuracy(lmap, lp, network, split="test")
    if n_seeds > 1:
        for label, low, high in (("L-map pruning", lmap_low, lmap_high), ("LP pruning", lp_low, lp_high)):
            test = (low.xs("test", level="split")["accuracy"], high.xs("test", level="split")["accuracy"])
            seed_band(lines_labelled(fig, label)[0], *test)
    fig.axes[0].set_title(f"{variant.capitalize()} depth {depth}: LP and L-map pruning\n(test; {seed_note(n_seeds)})")
    return fig


def _rpd_figures(t: dict[str, pd.DataFrame], variant: str, config: StructureConfig) -> dict[str, Figure]:
    from netdyn import plots
    from netdyn.plots.seeds import lines_labelled, one_seed_note, seed_band, seed_note

    seeds = sorted(set(t["rpd_summary"]["seed"]))
    L = max(config.depths) + 1
    representative = sorted({1, L // 2, L - 1})
    rpd = plots.plot_rpd(_first_seed(t["rpd"]), layers=representative)
    rpd.axes[0].set_title(f"{variant.capitalize()} depth {L - 1}: RPD of representative layers\n"
                          f"({one_seed_note(len(seeds), seeds[0])})")
    summary, low, high = _over_seeds(t["rpd_summary"], ["layer"], ["gradient", "order_index"])
    gradient = plots.plot_rpd_summary(summary)
    if len(seeds) > 1:
        for label, column in (("RPD gradient", "gradient"), ("order index", "order_index")):
            seed_band(lines_labelled(gradient, label)[0], low[column], high[column])
    gradient.axes[0].set_title(f"{variant.capitalize()} depth {L - 1}: RPD summary by layer\n({seed_note(len(seeds))})")
    modes = plots.plot_neuron_modes(_first_seed(t["neuron_mode_census"]))
    modes.axes[0].set_title(f"{variant.capitalize()}: neuron modes by layer ({one_seed_note(len(seeds), seeds[0])})")
    return {"rpd": rpd, "rpd_gradient": gradient, "neuron_modes": modes}


def _geometry_figure(t: dict[str, pd.DataFrame], variant: str) -> Figure:
    from netdyn import plots
    from netdyn.plots.seeds import lines_labelled, seed_band

    seeds = sorted(set(t["class_geometry"]["seed"]))
    columns = ["cos_dist_mean", "cos_dist_q25", "cos_dist_q75", "centre_similarity"]
    geometry, low, high = _over_seeds(t["class_geometry"], ["layer"], columns)
    fig = plots.plot_class_geometry(geometry, _first_seed(t["class_geometry_samples"]))
    if len(seeds) > 1:
        seed_band(lines_labelled(fig, "distance to own class centre (mean)")[0], low["cos_dist_mean"],
                  high["cos_dist_mean"], style="bars")
        seed_band(lines_labelled(fig, "similarity between class centres (mean)")[0], low["centre_similarity"],
                  high["centre_similarity"])
    note = f"median of {len(seeds)} seeds, min to max as band / bars" if len(seeds) > 1 else f"seed {seeds[0]}"
    fig.axes[0].set_title(f"{variant.capitalize()}: class geometry by layer\n"
                          f"({note}; grey: digit 5, seed {seeds[0]})")
    return fig


def _one(table: pd.DataFrame, variant: str, seed: int = 0) -> pd.DataFrame:
    """One variant's (and seed's) rows, without the member columns, as the plot functions take them."""
    rows = table[(table["variant"] == variant) & (table["seed"] == seed)]
    return rows.drop(columns=["member", "variant", "depth", "seed"])


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 3 (section V, "The Standard Structure of DNNs") before any run used them.
# The layer-wise claims are read off the deepest net of each variant, one value per seed; the training-curve claims
# off every depth's history, under running and under batch statistics (the running-statistics ones marked).

MIN_BUMP = 0.05
"""A test-loss rise (nats above the first evaluation) that counts as a bump rather than noise."""
MIN_TREND = 0.5
"""A Spearman correlation that counts as a trend with layer or depth (|rho| >= 0.5)."""


def _rows(tables: Mapping[str, pd.DataFrame], name: str, variant: str, seed: int) -> pd.DataFrame:
    table = tables.get(name)
    rows = table[(table["variant"] == variant) & (table["seed"] == seed)] if table is not None else None
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no {name} rows of the {variant} net of seed {seed} (it diverged or was not analysed)")
    return rows


def effective_from(network: pd.DataFrame, pruning: pd.DataFrame, kind: str) -> int:
    """The layer (or cut) from which on ``kind`` ("lp" or "lmap") pruning is effective on the test set, from one
    net's ``network`` rows and its ``pruning`` rows (see docs/quantities.md#l-map); CannotEvaluate when never."""
    accuracy = network.set_index("split")["accuracy"]
    layer = effective_layer(pruning, float(accuracy["test"]), rule="from")
    if layer is None:
        raise CannotEvaluate(f"{'L-map' if kind == 'lmap' else 'LP'} pruning never becomes effective")
    return layer


def _effective_from(tables: Mapping[str, pd.DataFrame], kind: str, variant: str, seed: int) -> int:
    return effective_from(_rows(tables, "network", variant, seed), _rows(tables, kind, variant, seed), kind)




def lp_before_lmap(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Layers between where LP pruning and where L-map pruning become effective (positive: LP earlier)."""
    return float(_effective_from(tables, "lmap", variant, seed) - _effective_from(tables, "lp", variant, seed))


def linear_tail(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Hidden layers after the one from which on L-map pruning is effective (the linear tail)."""
    depth = int(_rows(tables, "network", variant, seed)["depth"].iloc[0])
    return float(depth - _effective_from(tables, "lmap", variant, seed))


def rpd_gradient_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Spearman correlation of the RPD gradient with the hidden layer's index."""
    rows = _rows(tables, "rpd_summary", variant, seed)
    rows = rows[rows["layer"] >= 1].sort_values("layer")
    return rank_correlation(rows["layer"], rows["gradient"], "layers")


def rpd_gradient_at_lmap(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """The RPD gradient at the layer from which on L-map pruning is effective, over the largest RPD gradient of
    any hidden layer (1: the maximum is reached there)."""
    at = _effective_from(tables, "lmap", variant, seed)
    rows = _rows(tables, "rpd_summary", variant, seed).set_index("layer")["gradient"]
    if at not in rows.index:
        raise CannotEvaluate(f"L-map pruning is effective from layer {at}, which has no RPD (the input)")
    return float(rows[at] / rows[rows.index >= 1].max())


def cos_dist_ratio(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Mean cosine distance of a sample to its class centre at the last hidden layer over that at the first."""
    rows = _rows(tables, "class_geometry", variant, seed).set_index("layer")["cos_dist_mean"]
    hidden = rows[rows.index >= 1].sort_index()
    if len(hidden) < 2 or hidden.iloc[0] == 0:
        raise CannotEvaluate("fewer than two hidden layers, or no spread at the first")
    return float(hidden.iloc[-1] / hidden.iloc[0])


def centre_similarity_last(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Mean cosine similarity between the class centres at the last hidden layer."""
    rows = _rows(tables, "class_geometry", variant, seed)
    return float(rows.sort_values("layer")["centre_similarity"].iloc[-1])


def loss_bumps(history: pd.DataFrame, variant: str, seed: int, bn_mode: str) -> pd.Series:
    """Per depth: how far the test loss rises above its first evaluation (0 when it never does)."""
    rows = history[(history["variant"] == variant) & (history["seed"] == seed) & (history["split"] == "test")
                   & (history["bn_mode"] == bn_mode)]  # fmt: skip
    if rows.empty:
        raise CannotEvaluate(f"no test history of {variant} nets of seed {seed} under {bn_mode} statistics")
    bumps = {}
    for depth, own in rows.sort_values("step").groupby("depth"):
        loss = own["loss"].astype(float)
        bumps[depth] = max(0.0, float(loss.max() - loss.iloc[0]))
    return pd.Series(bumps).sort_index()


def loss_bump_deepest(
    tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str, bn_mode: str
) -> float:
    """How far the deepest net's test loss rises above its first evaluation."""
    bumps = loss_bumps(tables["history"], variant, seed, bn_mode)
    return float(bumps.iloc[-1])


def loss_bump_trend(
    tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str, bn_mode: str
) -> float:
    """Spearman correlation of the test-loss bump with depth."""
    bumps = loss_bumps(tables["history"], variant, seed, bn_mode)
    return rank_correlation(pd.Series(bumps.index, dtype=float), pd.Series(bumps.to_numpy()), "depths")


def _layer_criteria(variant: str) -> list[Criterion]:
    net = f"the deepest {variant} net"
    deepest = f"{net}, test set, effective = within 0.005 of the network's accuracy (see docs/quantities.md#l-map)"
    return [
        Criterion(
            f"lp_before_lmap_{variant}",
            "Fig. 3(a, b): 'LP achieves effective pruning in much earlier layers ... L-map pruning becomes "
            "effective in later layers'",
            f"layer from which on L-map pruning is effective minus the layer from which on LP pruning is; {deepest}",
            ">=", 1, partial(lp_before_lmap, variant=variant),
        ),
        Criterion(
            f"linear_tail_{variant}",
            "Fig. 3(a, b): 'the final sections of the DNN evolve into a pure LNN, equivalent to a linear perceptron'",
            f"hidden layers after the one from which on L-map pruning is effective; {deepest}",
            ">=", 1, partial(linear_tail, variant=variant),
        ),
        Criterion(
            f"rpd_gradient_grows_{variant}",
            "Fig. 3(c, d): 'the RPD gradient increases with layer depth'",
            f"Spearman correlation of the RPD gradient with the layer over the hidden layers of {net}",
            ">=", MIN_TREND, partial(rpd_gradient_trend, variant=variant),
        ),
        Criterion(
            f"rpd_gradient_max_at_lmap_{variant}",
            "Fig. 3(c, d): 'When L-map pruning becomes effective, the RPD gradients attain their maximum values'",
            "RPD gradient at the layer from which on L-map pruning is effective over the largest RPD gradient of "
            f"any hidden layer (within 10% of the maximum); {deepest}",
            ">=", 0.9, partial(rpd_gradient_at_lmap, variant=variant),
        ),
        Criterion(
            f"samples_cluster_{variant}",
            "Fig. 3(e, f): 'samples cluster towards the center of their respective classes as depth increases'",
            "mean cosine distance of a training sample to its class centre at the last hidden layer over that at "
            f"the first (at most half); {net}",
            "<=", 0.5, partial(cos_dist_ratio, variant=variant),
        ),
        Criterion(
            f"centres_orthogonal_{variant}",
            "Fig. 3(e, f): 'the center vectors of different classes become mutually orthogonal'",
            "mean cosine similarity between class centres at the last hidden layer (orthogonal: 0; at most 0.3, "
            f"an angle of at least 72 degrees; ReLU outputs cannot reach 0 exactly); {net}",
            "<=", 0.3, partial(centre_similarity_last, variant=variant),
        ),
    ]


def _curve_criteria(variant: str) -> list[Criterion]:
    out = []
    for bn_mode in ("running", "batch"):
        measured = f"test loss of the {variant} nets evaluated with BN {bn_mode} statistics"
        out += [
            Criterion(
                f"loss_bump_{variant}_{bn_mode}",
                "Fig. 3(g, h): the test loss 'may rise slightly before decreasing', the double descent the "
                "figure exhibits",
                f"largest rise of the deepest net's test loss above its first evaluation (nats); {measured}",
                ">=", MIN_BUMP, partial(loss_bump_deepest, variant=variant, bn_mode=bn_mode),
                running_only=bn_mode == "running",
            ),
            Criterion(
                f"loss_bump_grows_{variant}_{bn_mode}",
                "Fig. 3(g, h): the double descent becomes 'increasingly pronounced as the number of hidden "
                "layers increases'",
                f"Spearman correlation of the test-loss rise with depth over the trained depths; {measured}",
                ">=", MIN_TREND, partial(loss_bump_trend, variant=variant, bn_mode=bn_mode),
                running_only=bn_mode == "running",
            ),
        ]
    return out


def structure_criteria(config: StructureConfig) -> list[Criterion]:
    """The criteria of ``structure`` (see docs/verdicts.md) for the variants ``config`` trains."""
    out: list[Criterion] = []
    for residual in ("none", "pre"):
        if residual in config.residuals:
            out += _layer_criteria(VARIANTS[residual]) + _curve_criteria(VARIANTS[residual])
    return out


EXPERIMENT = Structure
