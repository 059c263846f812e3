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
