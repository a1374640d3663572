"""The README's main job works as written: its `netdyn train ...` command, run in-process."""

import re
import shlex
from pathlib import Path

from netdyn import load_run
from netdyn.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_main_command_trains_analyses_and_reports(tmp_path, capsys):
    text = README.read_text()
    block = re.search(r"```bash\n(.*?)\n```", text, re.S).group(1)
    command = block.split("&&")[-1].strip()
    argv = shlex.split(command)
    assert argv[0] == "netdyn" and "--analyze" in argv
    out = tmp_path / "run"
    assert main([*argv[1:], "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    run = load_run(out)
    assert run.summary["test_accuracy"] > 0.85  # a 4-layer net on 4,000 real digits
    for name in ("lmap", "lp", "rpd_summary", "neuron_mode_census", "sample_basin", "weight_basin"):
        assert name in run.table_names()
    assert (out / "figures" / "layer_accuracy.png").exists()
