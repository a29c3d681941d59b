"""A reader of W&B offline run files (`OUT/wandb/offline-run-*/run-*.wandb`), for the tests.

Why: the tests check what a sweep told W&B (groups, names, tags, configs, summaries, curves, and
that no API key was written) without network access or a W&B account, so they read the offline
files the sweep wrote. W&B has no public reader; the file is a LevelDB log (32 KiB blocks, 7-byte
record headers) of protobuf `Record`s, decoded here with wandb's own protobuf classes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any


def _records(path: Path) -> Any:
    """Raw records of a `.wandb` file (LevelDB log format: 32 KiB blocks, 7-byte headers)."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
            buf = b""


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """Group, job type, name, tags, config, summary and history of an offline run folder."""
    from wandb.proto import wandb_internal_pb2 as pb  # lazy: wandb takes a second to import

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file")
    # `folder`: the run id W&B put in the folder name; a run stopped before its header (run
    # record) was written has only that
    out: dict[str, Any] = {
        "folder": Path(run_dir).name.split("-", 3)[-1], "config": {}, "summary": {}, "history": []
    }  # fmt: skip

    def key_of(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    for raw in _records(files[0]):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(
                id=r.run_id,
                group=r.run_group,
                job_type=r.job_type,
                name=r.display_name,
                tags=list(r.tags),
                project=r.project,
            )
            for item in r.config.update:
                out["config"][key_of(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                if key_of(item):
                    out["config"][key_of(item)] = json.loads(item.value_json)
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][key_of(item)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append(
                {key_of(item): json.loads(item.value_json) for item in rec.history.item}
            )
    out["config"].pop("_wandb", None)
    return out


def offline_runs(out: Path) -> list[dict[str, Any]]:
    """Every offline run under `OUT/wandb`, read with `read_offline_run`."""
    return [read_offline_run(d) for d in sorted((Path(out) / "wandb").glob("offline-run-*"))]
