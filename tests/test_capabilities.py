"""What a cluster can really do is read from its nodes: simulated nodes run nothing, kind runs containers but
has no real GPUs, only an existing cluster offers its services; real_cluster markers name what they need."""

from __future__ import annotations

import pytest

from chartproof.capabilities import capabilities_of, parse_needs, unmet
from chartproof.clusters.nodes import node_objects, parse_shape

GPU_SHAPE = parse_shape("ml.p5.48xlarge=2,cpu=1")


def test_simulated_nodes_have_no_capability_whatever_the_provider():
    nodes = node_objects(GPU_SHAPE, simulated=True)
    assert capabilities_of("embedded", nodes) == set()
    assert capabilities_of("existing", nodes) == set(), "an existing cluster of kwok nodes runs no container either"


def test_kind_runs_containers_but_its_advertised_gpus_are_not_real():
    nodes = node_objects(GPU_SHAPE, simulated=False)
    assert any(n["status"]["allocatable"].get("nvidia.com/gpu") for n in nodes), "the shape advertises GPUs"
    assert capabilities_of("kind", nodes) == {"containers"}


def test_an_existing_cluster_with_real_gpu_nodes_has_everything():
    assert capabilities_of("existing", node_objects(GPU_SHAPE, simulated=False)) == {"containers", "gpus", "services"}
    cpu_only = node_objects(parse_shape("cpu=2"), simulated=False)
    assert capabilities_of("existing", cpu_only) == {"containers", "services"}


def test_a_mixed_cluster_counts_only_its_real_nodes_for_gpus():
    nodes = node_objects(parse_shape("cpu=1"), simulated=False) + node_objects(parse_shape("ml.p5.48xlarge=1"))
    assert "gpus" not in capabilities_of("existing", nodes), "the GPUs are on a simulated node"


def test_needs_are_parsed_and_unknown_ones_refused():
    assert parse_needs(None) == ("services",)
    assert parse_needs("containers") == ("containers",)
    assert parse_needs("containers,gpus") == ("containers", "gpus")
    with pytest.raises(ValueError, match="unknown contianers; known: containers, gpus, services"):
        parse_needs("contianers")


def test_unmet_names_what_is_missing_and_what_the_cluster_has():
    assert unmet("kind-1", {"containers"}, ("containers",)) is None
    reason = unmet("kind-1", {"containers"}, ("gpus",))
    assert reason.startswith("needs real GPUs") and reason.endswith("cluster kind-1 has containers")
    assert unmet("cp-1", set(), ("containers",)).endswith("cluster cp-1 has simulated nodes only")
