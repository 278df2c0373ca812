"""meterline.services: the local Apache Kafka broker of `meterline services` (KRaft, from
Maven Central jars resolved with mvn), for machines without Docker.

May import: the standard library and the core's errors and settings; nothing of the pipeline.
"""
