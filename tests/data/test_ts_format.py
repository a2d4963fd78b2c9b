"""Tests of the `.ts` and `.arff` readers on tiny files written in the original formats."""

import numpy as np
import pytest

from ms_ssm_jax.data import shipped
from ms_ssm_jax.data import ts_format
from tests.data import conftest


def test_ts_multivariate_unequal_lengths_and_missing(write_file):
  data = ts_format.read_ts(write_file("Toy_TRAIN.ts", conftest.TS_MULTIVARIATE))
  assert data.problem_name == "ToyMulti" and data.class_names == ("up", "down")
  assert data.values.shape == (3, 4, 2) and data.values.dtype == np.float32
  np.testing.assert_array_equal(data.lengths, [3, 2, 4])
  np.testing.assert_array_equal(data.labels, ["up", "down", "up"])
  np.testing.assert_array_equal(data.label_ids, [0, 1, 0])
  np.testing.assert_array_equal(data.values[0], [[1, 10], [2, 20], [3, 30], [0, 0]])
  assert data.values[1, 0, 0] == 4.5 and np.isnan(data.values[1, 1, 0])
  np.testing.assert_array_equal(data.values[1, :, 1], [-100, 50, 0, 0])
  np.testing.assert_array_equal(data.values[2, :, 0], [0.5, 0.25, 0.125, 0.0625])


def test_ts_univariate_and_arff_give_the_same_data(write_file):
  ts = ts_format.read_labeled_series(write_file("u.ts", conftest.TS_UNIVARIATE))
  arff = ts_format.read_labeled_series(write_file("u.arff", conftest.ARFF_UNIVARIATE))
  for data in (ts, arff):
    assert data.problem_name == "ToyUni" and data.class_names == ("1", "2")
    np.testing.assert_array_equal(data.values[..., 0], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(data.lengths, [3, 3])
    np.testing.assert_array_equal(data.labels, ["1", "2"])


def test_arff_multivariate_relational(write_file):
  data = ts_format.read_arff(write_file("m.arff", conftest.ARFF_MULTIVARIATE))
  assert data.problem_name == "ToyMulti" and data.class_names == ("up", "down")
  assert data.values.shape == (2, 3, 2)
  np.testing.assert_array_equal(data.values[0], [[1, 10], [2, 20], [3, 30]])
  assert np.isnan(data.values[1, 1, 0]) and data.values[1, 0, 1] == -100
  np.testing.assert_array_equal(data.labels, ["up", "down"])


def test_ts_timestamps_keep_the_values(write_file):
  data = ts_format.read_ts(write_file("t.ts", conftest.TS_TIMESTAMPED))
  assert data.values[0, :, 0].tolist() == [1.5, 2.5]
  assert data.values[1, 0, 0] == 3.5 and np.isnan(data.values[1, 1, 0])


@pytest.mark.parametrize("old,new,line,message", [
    ("4.5,?:", "4.5,x:", 13, "cannot read 'x' as a number"),
    ("0.0625:1,2,3,4:up", "0.0625:1,2,3:up", 14, r"different lengths \[4, 3\]"),
    ("50:down", "50:sideways", 13, "label 'sideways' is not among"),
    ("@equalLength false", "@equalLength maybe", 8, "must be true or false"),
    ("@missing true", "@colour blue", 5, "unknown header tag @colour"),
    ("@classLabel true up down", "@targetLabel true", 9, "regression"),
])
def test_malformed_ts_names_the_line(write_file, old, new, line, message):
  path = write_file("bad.ts", conftest.TS_MULTIVARIATE.replace(old, new))
  with pytest.raises(ts_format.TsFormatError, match=f"bad.ts:{line}: .*{message}"):
    ts_format.read_ts(path)


def test_ts_cases_must_agree_with_the_header(write_file):
  path = write_file("bad.ts", conftest.TS_UNIVARIATE.replace("@seriesLength 3", "@seriesLength 4"))
  with pytest.raises(ts_format.TsFormatError, match="case 0 has length 3.*equal lengths of 4"):
    ts_format.read_ts(path)
  path = write_file("bad2.ts", conftest.TS_MULTIVARIATE.replace("@dimensions 2", "@dimensions 3"))
  with pytest.raises(ts_format.TsFormatError, match="case 0 has 2 dimensions, expected 3"):
    ts_format.read_ts(path)


def test_malformed_arff_names_the_line(write_file):
  path = write_file("bad.arff", conftest.ARFF_UNIVARIATE.replace("4,5,6,2", "4,5,2"))
  with pytest.raises(ts_format.TsFormatError, match=r"bad.arff:10: row has 2 values, the "
                     "header declares 3"):
    ts_format.read_arff(path)
  with pytest.raises(ValueError, match="expected a .ts or .arff file"):
    ts_format.read_labeled_series(write_file("x.csv", "1,2"))


@pytest.mark.skipif(
    shipped.find_uea_dataset("GunPoint") is None,
    reason="shipped data needs: pip install --no-deps aeon==1.6.0")
def test_shipped_arff_equals_shipped_ts():
  for name in ("BasicMotions", "GunPoint"):
    folder = shipped.find_uea_dataset(name).folder
    ts = ts_format.read_ts(folder / f"{name}_TRAIN.ts")
    arff = ts_format.read_arff(folder / f"{name}_TRAIN.arff")
    np.testing.assert_allclose(arff.values, ts.values, rtol=1e-6)
    np.testing.assert_array_equal(arff.labels, ts.labels)
