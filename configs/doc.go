// Package configs holds example files, not code: the controller's loa.yaml,
// a box's agent.yaml, systemd units for both, a mosquitto config for
// running Loa against an external broker, and a 3-node NATS cluster with
// JetStream and MQTT (nats/: node.conf and cluster.sh).
package configs
