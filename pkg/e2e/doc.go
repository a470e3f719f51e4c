// Package e2e holds the integration suite: both services in process, talking
// real gRPC over loopback to a Kafka broker. The suite runs on the embedded
// kfake broker by default and, unchanged, against a real Apache Kafka when
// KAFKA_BROKERS is set (make test-kafka).
package e2e
