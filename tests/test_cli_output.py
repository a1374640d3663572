"""What the command line shows: plain help for every command, -q/--quiet and -v/--verbose, the settings line."""

import re

import pytest

from netdyn.cli import build_parser, main
from netdyn.commands._options import plain_text

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]

TRAIN = ["train", "--dataset", "blobs", "--train-size", "60", "--test-size", "30", "--width", "8", "--depth", "2",
         "--epochs", "2", "--batch-size", "30", "--eval-every", "log:3", "--checkpoint-every", "log:2"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain_text_for_users(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for markup in ("``", ":class:", ":func:", ":meth:", "**", "`", "(default: None)"):
        assert markup not in text, f"netdyn {command} --help shows {markup!r}"
    for note in (r"\bSPEC\b", r"\bhelpers?\b", r"\bsessions?\b", r"\bissues?\b"):
        assert not re.search(note, text, re.IGNORECASE), f"netdyn {command} --help says {note}"
    assert "-q, --quiet" in text and "-v, --verbose" in text


def test_help_lists_choices_and_states_defaults_in_flag_spelling(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for choices in ("{sgd,adam,adamw}", "{ce,mse}", "{float32,float64}", "{auto,running,batch,both}",
                    "{none,pre,post}"):
        assert choices in text
    assert "overrides --epochs." in text  # a field quoted in a docstring is its flag
    assert "(default: --no-batchnorm)" in text and "(default: --seed)" in text
    assert "(default: --seed) (default:" not in text  # a stated default is not stated twice


def test_plain_text_keeps_the_words_of_the_markup():
    assert plain_text(":class:`~netdyn.data.Dataset` or :func:`netdyn.train`") == "Dataset or netdyn.train"
    assert plain_text("``steps`` is **bold** and `code`") == "steps is bold and code"


def test_quiet_shows_no_progress_bar_and_only_results(tmp_path, capsys, monkeypatch):
    import tqdm.auto

    bars = []

    class CountedBar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            bars.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", CountedBar)
    assert main([*TRAIN, "--out", str(tmp_path / "loud")]) == 0
    loud = capsys.readouterr()
    assert bars  # the bar is made (tqdm itself hides it where stderr is no terminal)
    # the settings line in the flags' spelling
    assert "training an MLP, width=8 depth=2 activation=relu residual=none batchnorm=false" in loud.out
    bars.clear()
    assert main([*TRAIN, "--out", str(tmp_path / "quiet"), "-q"]) == 0
    quiet = capsys.readouterr()
    assert not bars and quiet.err == ""
    assert "training an MLP" not in quiet.out and quiet.out.startswith("train accuracy")


def test_verbose_logs_what_is_loaded_and_computed(tmp_path, capsys):
    assert main([*TRAIN, "--out", str(tmp_path / "run"), "--verbose", "--analyze", "--no-basins"]) == 0
    err = capsys.readouterr().err
    assert "netdyn: loaded Dataset('blobs', n_train=60, n_test=30" in err
    assert re.search(r"netdyn: lmap in [\d.]+ s \(lmap\)", err)
    assert main([*TRAIN, "--out", str(tmp_path / "other"), "-q", "-v"]) == 2  # one or the other
