"""TensorBoard: one log dir per run, <results>/<sweep>/tensorboard/<run_id>, written with the
`tensorboard` package's own record writer and protos (what torch.utils.tensorboard wraps, minus
torch, so the analysis writes its summary run the same way).

Resume: a START session event at the checkpoint's step + 1 (torch's `purge_step`): TensorBoard
drops every event an interrupted attempt wrote at or after that step, and the resumed run's events
take their place (no duplicated or out-of-order steps). A fresh start (step 0) clears the folder.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import socket
import struct
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sweeps.tracking.fanout import RunInfo
from sweeps.tracking.settings import TrackerConfig, tracker_dir

__all__ = ["EventFile", "TensorBoardBackend", "log_dir"]


def log_dir(info: RunInfo) -> Path:
    return tracker_dir(info.results_dir, info.sweep, "tensorboard") / info.run_id


_FILE_IDS = itertools.count()


class EventFile:
    """One event file, written in the calling thread: `Tracking` already keeps the writes off the
    training loop, and tensorboard's EventFileWriter adds a thread of its own whose failure (the
    folder deleted mid-run) printed a traceback instead of raising to `Tracking`, which reports a
    tracker's failure once. Named as that writer names its files; its GFile reopens the file at
    every write, so a deleted folder raises instead of filling an unlinked file."""

    def __init__(self, folder: Path) -> None:
        from tensorboard.compat import tf
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        host, pid, uid = socket.gethostname(), os.getpid(), next(_FILE_IDS)
        name = folder / f"events.out.tfevents.{int(time.time()):010d}.{host}.{pid}.{uid}"
        self.writer = RecordWriter(tf.io.gfile.GFile(str(name), "wb"))
        self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def add_event(self, event: Any) -> None:
        self.writer.write(event.SerializeToString())

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk."""
    width, height = struct.unpack(">II", data[16:24])
    return height, width


class TensorBoardBackend:
    def __init__(self, info: RunInfo, cfg: TrackerConfig) -> None:
        self.info = info
        self.dir = log_dir(info)
        self.writer: Any = None
        self.last_step = 0

    def _add(self, step: int, **event: Any) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.writer.add_event(Event(wall_time=time.time(), step=step, **event))

    def _text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        tensor = TensorProto(
            dtype="DT_STRING",
            string_val=[text.encode("utf-8")],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
        )
        value = Summary.Value(tag=tag, metadata=meta, tensor=tensor)
        self._add(step, summary=Summary(value=[value]))

    def load(self) -> None:
        import tensorboard.summary.writer.record_writer  # noqa: F401 - imported ahead

    def start(self, *, resume_step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import SessionLog

        if resume_step == 0 and self.dir.exists():
            shutil.rmtree(self.dir)  # a run started afresh keeps no events of an older attempt
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer = EventFile(self.dir)
        self.last_step = resume_step
        if resume_step > 0:  # TensorBoard purges the older events from this step on
            self._add(resume_step + 1, session_log=SessionLog(status=SessionLog.START))
            return
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(self.info.params.items()))
        self._text("config", "| key | value |\n| --- | --- |\n" + rows, 0)
        self._text("tags", "\n".join(f"- {k}: {v}" for k, v in sorted(self.info.tags.items())), 0)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()]
        self._add(step, summary=Summary(value=values))
        self.last_step = step

    def flush(self) -> None:
        self.writer.flush()

    def summary(self, values: Mapping[str, Any]) -> None:
        numbers = {
            f"summary/{k}": float(v)
            for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        self.log(self.last_step, numbers)
        self._text(
            "summary", "```\n" + json.dumps(dict(values), indent=1) + "\n```", self.last_step
        )
        self.writer.flush()

    def images(self, paths: Iterable[Path]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        for path in paths:
            data = Path(path).read_bytes()
            height, width = _png_size(data)
            image = Summary.Image(
                height=height, width=width, colorspace=4, encoded_image_string=data
            )
            self._add(0, summary=Summary(value=[Summary.Value(tag=Path(path).stem, image=image)]))
        self.writer.flush()

    def finish(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
