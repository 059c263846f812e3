// Package spi holds Kite's service provider interfaces: the small contracts
// that every codec, compressor, transport, registry, balancer and filter
// implements, the error type that crosses the wire, call metadata, and the
// catalog that maps (kind, name) to an implementation.
//
// spi imports no other Kite package. Plugins import spi and nothing of
// core; the core imports spi and never a plugin. That keeps the same
// plugin package usable compiled in or served out of process.
//
// Interfaces are split by rhythm: configuration and updates on one side
// (Balancer.Build, Registry.Watch), the per-call hot path on the other
// (Picker.Pick, Codec.Marshal).
package spi
