package core

import "github.com/kiterpc/kite/spi"

// Calls refused before the filter chain (unknown method, draining,
// admission limits) never reach a filter, so a metrics filter would not
// count them: the server tells the filters that implement
// spi.RejectObserver instead. core knows only the spi interface, never a
// plugin.

// rejectObservers returns the filters of fs that observe rejections.
func rejectObservers(fs []spi.Filter) []spi.RejectObserver {
	var obs []spi.RejectObserver
	for _, f := range fs {
		if o, ok := f.(spi.RejectObserver); ok {
			obs = append(obs, o)
		}
	}
	return obs
}

// rejected reports a call refused before the chain to the observers. It
// costs nothing when no filter observes.
func (s *Server) rejected(method string, known bool, peer, protocol, reason string, err error, oneway bool) {
	if len(s.rejectObs) == 0 {
		return
	}
	r := spi.Rejection{Method: method, Known: known, Peer: peer, Protocol: protocol, Reason: reason, Err: err, OneWay: oneway}
	for _, o := range s.rejectObs {
		o.CallRejected(&r)
	}
}

// rejected reports a gRPC call refused in its headers, named by its
// :path.
func (h *h2conn) rejected(path, reason string, err error) {
	if len(h.s.rejectObs) == 0 {
		return
	}
	name := path
	known := false
	if m := h.g.lookup(path); m != nil {
		name, known = m.full, true
	} else if n, ok := GRPCMethodName(path); ok {
		name = n
	}
	h.s.rejected(name, known, h.sc.peer, spi.ProtocolGRPC, reason, err, false)
}
