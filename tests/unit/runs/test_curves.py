import matplotlib.image

from mlcycle.runs.curves import curve_metrics, parse_history, plot


def test_parse_history_keeps_epoch_records_and_skips_torn_lines():
    data = b'{"epoch":1,"train_loss":1.0}\n{"epoch":2,"train_loss":0.5}\n{"epoch":3,"tra'
    assert parse_history(data) == [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    assert parse_history(b'[1]\n{"no_epoch":1}\n') == []


def test_the_plot_is_an_image_with_one_panel_per_metric(tmp_path):
    curves = [(f"iris:{v}", [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 1 - 1 / (e + v)}
                             for e in range(1, 6)]) for v in (1, 2, 3)]
    curves.append(("failed-run", [{"epoch": 1, "train_loss": 2.0, "val_loss": float("nan")}]))
    assert curve_metrics(curves) == ["val_accuracy", "val_loss", "train_loss"]
    out = tmp_path / "curves.png"
    assert plot(curves, str(out)) == ["val_accuracy", "val_loss", "train_loss"]
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > 2 * height > 400  # three panels side by side

    four = tmp_path / "four.png"
    plot([(name, [{"epoch": 1, "a": 1, "b": 2, "c": 3, "d": 4}]) for name in "xy"], str(four))
    h4, w4, _ = matplotlib.image.imread(four).shape
    assert h4 > height  # a second row of panels


def test_chosen_metrics_only(tmp_path):
    out = tmp_path / "one.png"
    assert plot([("r", [{"epoch": 1, "a": 1.0, "b": 2.0}])], str(out), ["b"]) == ["b"]
    height, width, _ = matplotlib.image.imread(out).shape
    assert width < 2 * height
