"""``structure`` (paper Fig. 3): the standard structure of deep BN ReLU nets, plain and residual.

LP and L-map pruning accuracy by layer, the RPD of representative layers with the neuron-mode census and the
distribution of rho beside the RPD gradient, the cosine distance of the first 100 training samples of digit 5
to their class centre and the similarity of the class centres by layer, and the training curves (test loss,
test and training accuracy against steps) for several depths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import effective_layer
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentConfig, ExperimentRuns, Member, member_name, seeded
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
        "smoke": "8 s (2 CPU cores, unloaded, 2026-11-29)",
        "small": "4.2 min (254 s; idle 2-core CPU, 2 torch threads, 2026-11-30)",
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
        from netdyn import plots

        figs: dict[str, Figure] = {}
        L = max(config.depths) + 1
        representative = sorted({1, (L - 1 + 1) // 2, L - 1})
        for variant, (a, c, e, g) in (("plain", "aceg"), ("residual", "bdfh")):
            if variant not in set(tables["history"]["variant"]):
                continue
            t = {name: _one(table, variant) for name, table in tables.items() if name != "history"}
            suffix = "" if variant == "plain" else "_residual"
            if "lmap" in t and len(t["lmap"]):
                fig = plots.plot_layer_accuracy(t["lmap"], t["lp"], t["network"], split="test")
                fig.axes[0].set_title(f"{variant.capitalize()} depth {L - 1}: LP and L-map pruning (test)")
                figs[f"fig3{a}_pruning{suffix}"] = fig
                figs[f"fig3{c}_rpd{suffix}"] = plots.plot_rpd(t["rpd"], layers=representative)
                figs[f"fig3{c}_rpd_gradient{suffix}"] = plots.plot_rpd_summary(t["rpd_summary"])
                figs[f"fig3{c}_neuron_modes{suffix}"] = plots.plot_neuron_modes(t["neuron_mode_census"])
                figs[f"fig3{e}_class_geometry{suffix}"] = plots.plot_class_geometry(
                    t["class_geometry"], t["class_geometry_samples"]
                )
            history = tables["history"]
            curves = history[(history["variant"] == variant) & (history["seed"] == 0)
                             & (history["bn_mode"] == "running")]
            fig = plots.plot_training(curves, by="depth")
            fig.axes[0].set_title(f"{variant.capitalize()} BN ReLU nets: training curves by depth (running statistics)")
            figs[f"fig3{g}_training{suffix}"] = fig
        return figs

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


def _one(table: pd.DataFrame, variant: str, seed: int = 0) -> pd.DataFrame:
    """One variant's (and seed's) rows, without the member columns, as the plot functions take them."""
    rows = table[(table["variant"] == variant) & (table["seed"] == seed)]
    return rows.drop(columns=["member", "variant", "depth", "seed"])


EXPERIMENT = Structure
