"""MetricWriter: CSV, JSONL and TensorBoard event files, without TensorFlow."""

import struct
import subprocess
import sys

from tensorboardX.event_file_writer import event_pb2  # the record format TensorBoard reads

from ms_ssm_jax import metrics


def read_scalars(directory):
  """{tag: [(step, value)]} of every event file in `directory`."""
  scalars = {}
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])  # TFRecord: length, crc, data, crc
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_rows_become_tensorboard_scalars_next_to_the_csv(tmp_path):
  with metrics.MetricWriter(tmp_path) as writer:
    writer.write("train", 10, {"loss": 0.5, "lr": 1e-3})
    writer.write("eval", 10, {"split": "validation", "accuracy": 0.75, "num_examples": 4})
  assert (tmp_path / "metrics" / "train.csv").is_file()
  scalars = read_scalars(tmp_path / "metrics")
  assert scalars["train/loss"] == [(10, 0.5)]
  assert scalars["eval/validation/accuracy"] == [(10, 0.75)]
  assert scalars["eval/validation/num_examples"] == [(10, 4.0)]


def test_the_writer_does_not_import_tensorflow():
  code = "import sys; import ms_ssm_jax.metrics; print('tensorflow' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
