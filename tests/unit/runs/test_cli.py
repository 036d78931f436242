import pytest

from mlcycle.runs.cli import main


@pytest.mark.parametrize("argv", [[], ["iris", "--selector", "a=b"]], ids=["neither", "both"])
def test_runs_takes_a_model_or_a_selector(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and "give a MODEL or --selector" in capsys.readouterr().err
