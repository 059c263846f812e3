// Package spitest holds conformance suites for Kite's service provider
// interfaces, in the spirit of testing/fstest: a suite takes a factory
// for an implementation and checks the behaviour the spi contracts
// promise. Every implementation, compiled in or reached through the
// out-of-process plugin bridge, runs the suite of its kind in its tests:
//
//	func TestConformance(t *testing.T) {
//		spitest.TestRegistry(t, func(t *testing.T) spi.Registry { … })
//	}
package spitest
