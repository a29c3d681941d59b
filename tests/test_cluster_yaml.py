"""cluster.yaml passes Ray's own launcher checks (prepare_config + validate_config against
ray/autoscaler/ray-schema.json), offline: neither test calls a cloud API (no bootstrap, no boto3).
The GCP and on-premise alternatives documented in its comments are checked the same way."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def _load() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def _commented_block(title: str) -> dict:
    """The YAML inside `# --- {title}: ...` ... `# --- end {title}` (comment markers removed)."""
    text = CLUSTER.read_text()
    m = re.search(
        rf"^# --- {re.escape(title)}:.*?\n(.*?)^# --- end {re.escape(title)}", text, re.S | re.M
    )
    assert m, f"cluster.yaml lacks the commented {title} block"
    lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in m.group(1).splitlines()]
    body = "\n".join(ln for ln in lines if not ln.startswith("("))  # drop prose in parentheses
    return yaml.safe_load(body)


def test_cluster_yaml_validates_with_ray_launcher():
    raw = _load()
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    # what prepare_config filled in did not override ours
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] == "head"
    gpu = prepared["available_node_types"]["gpu_worker"]
    assert gpu["node_config"]["InstanceType"].startswith(("g5", "g6", "p4", "p5"))
    assert (gpu["min_workers"], gpu["max_workers"]) == (0, 8)
    assert prepared["available_node_types"]["head"]["max_workers"] == 0
    assert prepared["file_mounts"] == {"~/mer": "."}
    # setup: our commands replace the defaults (whose Ray is a nightly wheel), same Ray everywhere
    setup = prepared["setup_commands"]
    assert any(f'"ray[default,tune]=={ray.__version__}"' in c for c in setup)
    assert any("pip install -q -e ~/mer" in c for c in setup)
    assert not any("ray-wheels" in c for c in setup)
    assert all(c in prepared["worker_setup_commands"] for c in setup)  # merged per node kind
    assert any("boto3" in c for c in prepared["head_setup_commands"])


@pytest.mark.parametrize("title", ["GCP"])
def test_documented_gcp_alternative_validates(title):
    raw = _load()
    raw.update(_commented_block(title))
    prepared = prepare_config(raw)
    validate_config(prepared)
    assert prepared["provider"]["type"] == "gcp"
    assert set(prepared["available_node_types"]) == {"head", "gpu_worker"}


def test_documented_on_premise_alternative_validates():
    raw = _load()
    for key in ("available_node_types", "head_node_type", "max_workers"):
        raw.pop(key)
    raw.update(_commented_block("on-premise"))
    raw["head_setup_commands"] = []
    prepared = prepare_config(raw)
    validate_config(prepared)
    assert prepared["provider"]["type"] == "local"
    assert prepared["max_workers"] == 2  # one per worker_ips entry
    assert prepared["file_mounts"] == {"~/mer": "."}
