"""Tests that need a real Apache Kafka upstream (kafka_cluster.py): what
librdkafka's mock cannot show."""
