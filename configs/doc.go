// Package configs holds example files, not code: the controller's loa.yaml,
// a box's agent.yaml, systemd units for both, and a mosquitto config for
// running Loa against an external broker.
package configs
