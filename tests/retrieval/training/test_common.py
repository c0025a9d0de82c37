"""The shared training path: one precision rule, one set of flags, one result file for both trainers."""

import json

import pytest

import encoder
from retrieval.training import colbert, dpr
from retrieval.training.common import RESULT_FILE, TrainInputError, TrainOptions, bf16_on

SHARED_OPTIONS = {f.name for f in TrainOptions.__dataclass_fields__.values()} - {"show_progress", "command"}


def test_bf16_auto_is_off_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(encoder, "bf16_supported", lambda device="cpu": False)
    assert bf16_on("auto", "cpu") is False and bf16_on("fp32", "cpu") is False
    with pytest.raises(TrainInputError, match="does not run bf16 natively"):
        bf16_on("bf16", "cpu")
    monkeypatch.setattr(encoder, "bf16_supported", lambda device="cpu": True)
    assert bf16_on("auto", "cpu") is True and bf16_on("bf16", "cpu") is True and bf16_on("fp32", "cpu") is False


@pytest.mark.parametrize("supported", [False, True])
def test_train_colbert_precision_auto_follows_the_hardware(tmp_path, tiny_train, monkeypatch, supported):
    """The bug this package fixed: ColBERT under auto trained with bf16 on any CPU."""
    monkeypatch.setattr(encoder, "bf16_supported", lambda device="cpu": supported)
    result = colbert.train_colbert(None, tiny_train, tmp_path / "m", hard_negatives=0, max_steps=1, batch_size=4,
                                   document_length=32, evaluate=False, precision="auto", device="cpu",
                                   show_progress=False)
    assert result.config["precision_used"] == ("bf16" if supported else "fp32")


def shared_flags(parser) -> dict[str, str]:
    """Option string -> destination of every flag that sets a shared option."""
    return {s: a.dest for a in parser._actions if a.dest in SHARED_OPTIONS for s in a.option_strings}


def test_both_trainers_take_the_same_shared_flags():
    dpr_parser, colbert_parser = dpr.build_parser(), colbert.build_parser()
    assert shared_flags(dpr_parser) == shared_flags(colbert_parser)
    assert set(shared_flags(dpr_parser).values()) == SHARED_OPTIONS  # every shared option has a flag
    for flag in ("--model", "--data", "--output", "--quiet", "--precision", "--gradient-accumulation", "--epochs",
                 "--batch-size", "--learning-rate", "--seed", "--dev-fraction", "--hard-negatives", "--no-eval"):
        assert flag in dpr_parser._option_string_actions and flag in colbert_parser._option_string_actions, flag
    # the old spellings still parse, hidden from --help
    for parser in (dpr_parser, colbert_parser):
        args = parser.parse_args(["--data", "d", "--output", "o", "--bf16", "on", "--grad-accum", "3", "--lr", "1e-4"])
        assert (args.precision, args.gradient_accumulation, args.learning_rate) == ("bf16", 3, 1e-4)
        assert parser.parse_args(["--data", "d", "--output", "o", "--bf16", "off"]).precision == "fp32"
        assert "--grad-accum" not in parser.format_help() and "--bf16" not in parser.format_help()
    assert dpr_parser.parse_args(["--data", "d", "--output", "o"]).hard_negatives == 0
    assert colbert_parser.parse_args(["--data", "d", "--output", "o"]).hard_negatives == 1


def test_both_commands_accept_the_same_argv_and_write_the_same_result_file(tmp_path, tiny_train, capsys):
    argv = ["--data", str(tiny_train), "--max-steps", "1", "--batch-size", "4", "--hard-negatives", "0",
            "--gradient-accumulation", "1", "--learning-rate", "3e-5", "--precision", "fp32", "--seed", "7",
            "--no-eval", "--logging-steps", "1", "--quiet"]
    keys = []
    for name, main in (("dpr", dpr.main), ("colbert", colbert.main)):
        out = tmp_path / name
        assert main(argv + ["--output", str(out)]) == 0
        assert f"result {out / RESULT_FILE}" in capsys.readouterr().out
        summary = json.loads((out / RESULT_FILE).read_text())
        assert summary["steps"] == 1 and summary["config"]["seed"] == 7 and summary["config"]["precision_used"] == "fp32"
        assert f"Training with `retrieval.training.{name}`" in (out / "README.md").read_text()
        keys.append(set(summary))
    assert keys[0] == keys[1]


def test_bad_shared_options_stop_both_trainers(tmp_path, tiny_train, capsys):
    for main in (dpr.main, colbert.main):
        code = main(["--data", str(tiny_train), "--output", str(tmp_path / "o"), "--gradient-accumulation", "0", "--quiet"])
        assert code == 2 and "--gradient-accumulation must be >= 1" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()
