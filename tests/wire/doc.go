// Package wire holds end-to-end tests that look at the bytes on the wire:
// a frame-sniffing proxy sits between a real client and server and records
// every frame header, so tests can assert what actually travelled.
package wire
