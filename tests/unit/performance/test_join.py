import numpy as np
import pyarrow as pa
import pytest

from mlcycle.performance import join

pytestmark = pytest.mark.unit


def logged(ids, rows, outputs) -> pa.Table:
    return pa.table({"request_id": pa.array(ids), "row": pa.array(rows, pa.int32()),
                     "prediction": pa.array(outputs, pa.list_(pa.float32()))})


def labels(ids, values, rows=None, id_column="request_id") -> pa.Table:
    columns = {id_column: pa.array(ids), "label": pa.array(values)}
    if rows is not None:
        columns["row"] = pa.array(rows)
    return pa.table(columns)


LOGGED = logged(["a", "b", "c", "d"], [0, 0, 0, 0],
                [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])


def test_labels_join_the_logged_predictions_by_request_id_and_the_rest_count_for_coverage():
    keyed = join.keyed_labels(labels(["c", "a", "x"], [2, 1, 0]), "request_id", None, "label")
    joined = join.join(LOGGED, keyed, classification=True)
    assert joined.predictions.tolist() == [0, 2] and joined.truth.tolist() == [1, 2]  # a then c, in log order
    assert (joined.labelled_rows, joined.window_rows, joined.coverage) == (2, 4, 0.5)


def test_class_names_map_to_the_models_output_order_and_unknown_names_are_named():
    keyed = join.keyed_labels(labels(["a", "b"], ["setosa", "virginica"]), "request_id", None, "label")
    joined = join.join(LOGGED, keyed, True, classes=["setosa", "versicolor", "virginica"])
    assert joined.truth.tolist() == [0, 2] and joined.predictions.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"label\(s\) \['lily'\] are not among the classes"):
        join.join(LOGGED, join.keyed_labels(labels(["a"], ["lily"]), "request_id", None, "label"), True,
                  classes=["setosa"])


def test_text_labels_without_classes_ask_for_them():
    with pytest.raises(ValueError, match="set spec.monitoring.performance.classes"):
        join.join(LOGGED, join.keyed_labels(labels(["a"], ["setosa"]), "request_id", None, "label"), True)


def test_the_last_label_of_a_row_wins_and_missing_labels_are_left_out():
    keyed = join.keyed_labels(labels(["a", "b", "a", "d"], [1, 1, 0, None]), "request_id", None, "label")
    joined = join.join(LOGGED, keyed, True)
    assert joined.truth.tolist() == [0, 1] and joined.labelled_rows == 2


def test_rows_of_batched_requests_join_on_the_row_column_and_ids_are_text():
    batch = logged(["7", "7", "7"], [0, 1, 2], [[0.1], [2.9], [1.2]])
    keyed = join.keyed_labels(labels([7, 7], [3.0, 1.0], rows=[1, 2], id_column="rid"), "rid", "row", "label")
    joined = join.join(batch, keyed, classification=False)
    assert joined.predictions.tolist() == pytest.approx([2.9, 1.2]) and joined.truth.tolist() == [3.0, 1.0]


def test_without_a_row_column_a_label_is_for_the_requests_first_row():
    batch = logged(["r", "r"], [0, 1], [[0.0, 1.0], [1.0, 0.0]])
    joined = join.join(batch, join.keyed_labels(labels(["r"], [1]), "request_id", None, "label"), True)
    assert joined.truth.tolist() == [1] and joined.predictions.tolist() == [1] and joined.coverage == 0.5


def test_a_missing_label_column_is_named():
    with pytest.raises(KeyError, match=r"\['species'\] are not in the labels"):
        join.keyed_labels(labels(["a"], [1]), "request_id", None, "species")


def test_one_output_value_is_the_class_rounded_or_the_regression_value():
    scalar = pa.table({"request_id": ["a", "b"], "row": pa.array([0, 0], pa.int32()),
                       "prediction": pa.array([0.8, 0.2])})
    keyed = join.keyed_labels(labels(["a", "b"], [1, 1]), "request_id", None, "label")
    assert join.join(scalar, keyed, True).predictions.tolist() == [1, 0]
    assert join.join(scalar, keyed, False).predictions.tolist() == pytest.approx([0.8, 0.2])


def test_the_output_to_score_is_the_only_output_column_or_the_one_named():
    schema = pa.schema([("x1", pa.float32()), ("request_id", pa.string()), ("output__0", pa.list_(pa.float32()))])
    assert join.output_column(schema, ["request_id"], None) == "output__0"
    two = schema.append(pa.field("probabilities", pa.list_(pa.float32())))
    with pytest.raises(ValueError, match=r"\['output__0', 'probabilities'\]: set spec.monitoring.performance"):
        join.output_column(two, ["request_id"], None)
    assert join.output_column(two, ["request_id"], "probabilities") == "probabilities"
    with pytest.raises(ValueError, match="'nope' is not in the request logs"):
        join.output_column(two, ["request_id"], "nope")


def test_outputs_of_uneven_width_are_refused():
    uneven = logged(["a", "b"], [0, 0], [[0.1, 0.9], [0.3]])
    with pytest.raises(ValueError, match="same number in every row"):
        join.predictions(uneven.column("prediction"), True)
    assert join.predictions(pa.array([[0.1, 0.9]], pa.list_(pa.float32())), True).dtype == np.int64
