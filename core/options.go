package core

import (
	"maps"
	"slices"
)

// Options returns the options the client was built with, every default
// filled in (core/defaults): what the client effectively runs with.
// SetDiscovery and SetBalancer show in it; the retry and breaker settings
// are those passed to NewClient (SetRetry and SetBreaker do not change
// them here). The slices, maps and pointers are copies.
func (c *Client) Options() ClientOptions {
	c.mu.Lock()
	o := c.opts
	c.mu.Unlock()
	o.Targets = slices.Clone(o.Targets)
	o.RetryCodes = slices.Clone(o.RetryCodes)
	o.Filters = slices.Clone(o.Filters)
	o.Methods = maps.Clone(o.Methods)
	if o.Retry != nil {
		p := *o.Retry
		p.Idempotent = slices.Clone(p.Idempotent)
		o.Retry = &p
	}
	if o.Breaker != nil {
		b := *o.Breaker
		o.Breaker = &b
	}
	return o
}

// Options returns the options the server was built with, every default
// filled in (core/defaults). The slices are copies.
func (s *Server) Options() ServerOptions {
	o := s.opts
	o.Codecs = slices.Clone(o.Codecs)
	o.Compressors = slices.Clone(o.Compressors)
	o.Filters = slices.Clone(o.Filters)
	return o
}
