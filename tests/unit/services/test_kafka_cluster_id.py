"""The local broker's cluster id must be a value the storage tool's parser accepts."""

import base64

from meterline.services.kafka_local import _kafka_uuid


def test_cluster_ids_never_start_with_a_dash() -> None:
    # One random id in 64 starts with "-"; kafka-storage then reads it as an option and
    # `services up` fails (seen once in CI). 5,000 draws would hit that about 78 times.
    ids = [_kafka_uuid() for _ in range(5000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]


def test_cluster_ids_are_16_byte_url_safe_base64() -> None:
    cluster_id = _kafka_uuid()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
