"""scripts/profile_top_ops.py: a trace's device ops summed by op and by kind."""

import gzip
import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import profile_top_ops  # noqa: E402


def write_trace(path: pathlib.Path) -> pathlib.Path:
  """A Chrome trace shaped like a GPU run's: host and device processes, ops and kernels."""
  meta = [
      {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
      {"ph": "M", "pid": 7, "name": "process_name", "args": {"name": "/device:GPU:0"}},
      {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "Stream #1"}},
      {
          "ph": "M", "pid": 7, "tid": 2, "name": "thread_name",
          "args": {"name": "Stream #14(Compute)"}
      },
      {"ph": "M", "pid": 7, "tid": 3, "name": "thread_name", "args": {"name": "XLA Modules"}},
  ]

  def op(tid, name, dur, pid=7):
    return {
        "ph": "X", "pid": pid, "tid": tid, "ts": 0.0, "dur": dur, "name": name,
        "args": {"kernel_details": "grid:7,1,1"}
    }

  fft = "void vector_fft_symm_c2r<4096u, EPT<16u>>(kernel_arguments_t<unsigned int>)"
  ops = [
      op(2, "fft_1", 300.0),
      op(2, "fft_1", 300.0),
      op(2, fft, 100.0),
      op(2, "loop_transpose_fusion_3", 500.0),
      op(3, "jit_train_step", 9999.0),  # a module, not a kernel
      op(1, "fft_1", 9999.0, pid=1),  # the host
  ]
  trace = path / "plugins" / "profile" / "run" / "host.trace.json.gz"
  trace.parent.mkdir(parents=True)
  with gzip.open(trace, "wt") as f:
    json.dump({"traceEvents": meta + ops}, f)
  return trace


def test_kernels_and_kinds_from_the_device_stream_lines_only(tmp_path):
  trace = json.load(gzip.open(write_trace(tmp_path), "rt"))
  ops = profile_top_ops.top_ops(profile_top_ops.device_op_events(trace, "/device:GPU:0"))
  assert [(op.name[:9], op.count, op.total_ms) for op in ops] == [("fft_1", 2, 0.6),
                                                                  ("loop_tran", 1, 0.5),
                                                                  ("void vect", 1, 0.1)]
  kinds = profile_top_ops.by_kind(ops)
  assert [(k.kind, k.count, pytest.approx(k.total_ms)) for k in kinds
         ] == [("fft", 2, pytest.approx(0.6)), ("loop_transpose_fusion", 1, pytest.approx(0.5)),
               ("vector_fft_symm_c2r", 1, pytest.approx(0.1))]


def test_main_prints_per_step_times(tmp_path, capsys):
  write_trace(tmp_path)
  assert profile_top_ops.main([str(tmp_path), "--steps", "2", "--json",
                               str(tmp_path / "ops.json")]) == 0
  printed = capsys.readouterr().out
  assert "| fft_1 | fft | 1 | 0.300 | 50.0% |" in printed
  assert "all ops: 0.600 ms/step over 2 steps" in printed
  assert json.loads((tmp_path / "ops.json").read_text())[0]["name"] == "fft_1"
  # The saved list gives the same tables.
  assert profile_top_ops.main([str(tmp_path / "ops.json"), "--steps", "2"]) == 0
  assert "| fft_1 | fft | 1 | 0.300 | 50.0% |" in capsys.readouterr().out


def test_a_host_only_trace_says_what_is_missing(tmp_path):
  trace = json.load(gzip.open(write_trace(tmp_path), "rt"))
  with pytest.raises(ValueError, match="no process named like '/device:TPU:0'"):
    profile_top_ops.device_op_events(trace, "/device:TPU:0")
  with pytest.raises(FileNotFoundError, match="profile_steps"):
    profile_top_ops.find_trace(tmp_path / "empty")
