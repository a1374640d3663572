"""The sweep folder: its points, their run folders, their errors and the gathered table.

    OUT/
      sweep.json          the sweep's id and every point: name, parameters, RunSpec
      sweep.parquet       one row per point: parameters, status, error, run_dir, summary
      runs/NAME/          each point's run folder (netdyn analyze and load_run open it)
      errors/NAME.txt     a failed point's error line and traceback
      .running/NAME.json  which host and process runs a point now (gone when it ends)

The state of a point lives in files that are written atomically: a point is complete when its run folder's
summary says it trained every step (or diverged) and, where it asked for an analysis, its report is written; a
point failed when ``errors/NAME.txt`` exists. ``sweep.parquet`` is derived from them, so an interrupted sweep
loses at most the points that were running.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from netdyn import _io
from netdyn._version import __version__
from netdyn.errors import ConfigError, RunError
from netdyn.store import Folder, RunFolder
from netdyn.sweeps.plan import SweepPoint
from netdyn.sweeps.worker import DIVERGED, FAILED, OK, PointOutcome

BASE_COLUMNS = ["name", "status", "error", "run_dir"]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _same_spec(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(_jsonable(a), sort_keys=True) == json.dumps(_jsonable(b), sort_keys=True)


class SweepFolder(Folder):
    """A sweep folder on disk; construction stores the path, named methods read and write. Its record is
    sweep.json, the sweep's definition."""

    kind = "sweep"
    record_name = "sweep.json"

    @property
    def definition_path(self) -> Path:
        return self.record_path

    @property
    def table_path(self) -> Path:
        return self.path / "sweep.parquet"

    def run_dir(self, name: str) -> Path:
        return self.path / "runs" / name

    def error_path(self, name: str) -> Path:
        return self.path / "errors" / f"{name}.txt"

    # ------------------------------------------------------------------ definition
    def read_definition(self) -> dict[str, Any]:
        record = self.read_record()
        if not isinstance(record.get("points"), list) or "id" not in record:
            raise RunError(f"{self.definition_path} is not a sweep definition (no id or points)")
        return record

    def merged_definition(self, points: list[SweepPoint]) -> dict[str, Any]:
        """The definition this folder will hold with ``points`` added: the folder's own points first.

        A point already there must have the same RunSpec (same name, different configuration: ConfigError), and a
        folder that holds something other than a sweep is refused. Nothing is written.
        """
        self.check_target(resume=True)  # a sweep folder grows: new points join the ones it holds
        if self.exists():
            record = self.read_definition()
        else:
            record = {"netdyn_version": __version__, "id": uuid.uuid4().hex, "points": []}
        known = {p["name"]: p for p in record["points"]}
        merged = list(record["points"])
        for point in points:
            entry = {"name": point.name, "params": _jsonable(point.params), "spec": point.spec.to_dict()}
            old = known.get(point.name)
            if old is None:
                merged.append(entry)
                known[point.name] = entry
            elif not _same_spec(old["spec"], entry["spec"]):
                raise ConfigError(
                    f"point {point.name} is already in {self.path} with another configuration "
                    f"({_first_difference(old['spec'], entry['spec'])}); use another --out"
                )
        for entry in merged:
            folder = RunFolder(self.run_dir(entry["name"]))
            if folder.exists() and not _recorded_matches(folder, entry["spec"]):
                raise ConfigError(
                    f"{folder.path} holds a run of another configuration than point {entry['name']}; "
                    "use another --out"
                )
        return {**record, "points": merged}

    def write_definition(self, record: dict[str, Any]) -> None:
        self.write_record(record)

    def points(self) -> list[SweepPoint]:
        """The folder's points, rebuilt from sweep.json."""
        from netdyn.orchestration import RunSpec

        return [
            SweepPoint(name=p["name"], params=dict(p.get("params") or {}), spec=RunSpec.from_dict(p["spec"]))
            for p in self.read_definition()["points"]
        ]

    # ------------------------------------------------------------------ state of a point
    def complete(self, point: SweepPoint) -> bool:
        """Trained every step (or diverged) and, where the spec asks for an analysis, analysed and reported."""
        folder = RunFolder(self.run_dir(point.name))
        if not folder.exists() or not (folder.path / "summary.json").is_file():
            return False
        summary = folder.summary
        if summary.get("diverged"):
            return True
        if summary.get("steps") != summary.get("total_steps"):
            return False
        analysed = folder.report_path.is_file() and (folder.path / "analysis.json").is_file()
        return point.spec.analysis is None or analysed

    def failure(self, name: str) -> str | None:
        """The recorded error line of a failed point, or None."""
        path = self.error_path(name)
        if not path.is_file():
            return None
        lines = path.read_text(errors="replace").splitlines()
        return lines[0] if lines else "failed (no message recorded)"

    def record_outcome(self, outcome: PointOutcome) -> None:
        """Write what a worker shipped back, and the error file of a failed point (removed otherwise)."""
        if outcome.files:
            base = self.run_dir(outcome.name)
            for relative, data in outcome.files.items():
                _io.write_bytes(base / relative, data)
        marker = self.path / ".running" / f"{outcome.name}.json"
        where = {"host": outcome.host, "pid": outcome.pid}
        if marker.is_file():  # a worker that died left it: it says where the point ran
            try:
                where = json.loads(marker.read_text())
            except (OSError, json.JSONDecodeError):
                pass
            marker.unlink(missing_ok=True)
        if outcome.status == FAILED:
            text = outcome.error or "failed"
            if outcome.traceback:
                text += "\n\n" + outcome.traceback
            text += f"\n(host {where.get('host') or '?'}, process {where.get('pid') or '?'})\n"
            _io.write_text(self.error_path(outcome.name), text)
        else:
            self.error_path(outcome.name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ the table
    def row(self, point: SweepPoint, status: str | None = None, error: str | None = None) -> dict[str, Any]:
        """One row of sweep.parquet: the point's parameters, status, error, run folder and summary."""
        folder = RunFolder(self.run_dir(point.name))
        summary: dict[str, Any] = {}
        if folder.exists():
            summary = dict(folder.summary)
            analysis = folder.path / "analysis.json"
            if analysis.is_file():
                try:
                    extra = json.loads(analysis.read_text()).get("summary", {})
                except (OSError, json.JSONDecodeError):
                    extra = {}
                summary.update({f"analysis_{k}": v for k, v in extra.items()})
        if status is None:
            if self.complete(point):
                status = DIVERGED if summary.get("diverged") else OK
            else:
                status, error = FAILED, self.failure(point.name)
        if status == DIVERGED and error is None:
            error = f"diverged: the loss became non-finite at step {summary.get('diverged_step')}"
        row: dict[str, Any] = {"name": point.name, **point.params, "status": status, "error": error,
                               "run_dir": f"runs/{point.name}" if folder.exists() else None}
        for key, value in summary.items():
            if isinstance(value, (dict, list)):
                continue
            column = key if key not in row else f"summary_{key}"
            row[column] = math.nan if value is None else value
        return row

    def write_table(self, rows: list[dict[str, Any]], params: list[str]) -> pd.DataFrame:
        """Write sweep.parquet and return it as read back (so the caller holds exactly what is on disk)."""
        _io.write_parquet(self.table_path, tidy_table(rows, params))
        return self.read_table()

    def read_table(self) -> pd.DataFrame:
        if not self.table_path.is_file():
            raise RunError(f"{self.path} holds no sweep.parquet yet (no point has finished)")
        return pd.read_parquet(self.table_path)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def tidy_table(rows: list[dict[str, Any]], params: list[str]) -> pd.DataFrame:
    """Rows -> a DataFrame that Parquet takes: name, parameters, status, error, run_dir, then the summaries;
    a column of mixed types becomes text."""
    table = pd.DataFrame(rows)
    for column in BASE_COLUMNS:
        if column not in table.columns:
            table[column] = pd.Series(dtype=object)
    first = ["name", *[p for p in params if p in table.columns], "status", "error", "run_dir"]
    table = table[[*first, *[c for c in table.columns if c not in first]]]
    for column in table.columns:
        if table[column].dtype == object:
            kinds = {type(v) for v in table[column] if not _missing(v)}
            if len(kinds) > 1 or not kinds <= {str, bool}:
                table[column] = [None if _missing(v) else str(v) for v in table[column]]
    return table.reset_index(drop=True)


def _recorded_matches(folder: RunFolder, spec: dict[str, Any]) -> bool:
    """Whether a run folder's config.json records the same model, data and training as ``spec``.

    ``netdyn.run`` records what it resolved from the loaded data: the model's sizes and the data set's options with
    their defaults filled in. A value the point's spec leaves open (None, an option not given) is therefore not
    compared; every value it gives must be the recorded one."""
    from netdyn.data.spec import DataSpec
    from netdyn.models.spec import ModelSpec

    try:
        config = folder.config
        recorded = ModelSpec.from_dict(config.get("model") or {}).to_dict()
        wanted = ModelSpec.from_dict(spec["model"]).to_dict()
        data_recorded = DataSpec.from_dict(config.get("data") or {}).to_dict()
        data_wanted = DataSpec.from_dict(spec["data"]).to_dict()
    except (RunError, ConfigError):
        return False
    for size in ("in_features", "num_classes"):
        if wanted[size] is None:
            recorded[size] = None
    for size in ("train_size", "test_size"):
        if data_wanted[size] is None:
            data_recorded[size] = None
    options = data_recorded.pop("options")
    given = data_wanted.pop("options")
    same_data = data_recorded == data_wanted and all(
        key in options and _same_spec({"v": options[key]}, {"v": value}) for key, value in given.items()
    )
    return recorded == wanted and same_data and _same_spec(config.get("train") or {}, spec["train"])


def _first_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif _jsonable(a) != _jsonable(b):
            return f"{prefix}{key}: {a!r} there, {b!r} now"
    return ""
