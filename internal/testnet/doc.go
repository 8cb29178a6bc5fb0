// Package testnet hands tests loopback addresses that stay free until the
// process under test binds them.
package testnet
