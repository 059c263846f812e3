package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"

	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
)

// The hostile-client phase: while the soak's load runs, an attacker on
// another loopback address (127.0.0.2, so it is a peer of its own) hits
// one server at a time, straight on its port, with the attacks of issue
// 20, each round checking the server's answer:
//
//   - idle streams: 200 opens of Echo.Sink (a stream handler that never
//     reads) on two connections that then send
//     nothing; every one must be ended by the server's stream idle
//     timeout with a DeadlineExceeded StreamEnd (or refused at open);
//   - decompression bombs: 8 zstd bodies of a few hundred bytes that
//     inflate to 4 MiB each; each must be answered (the body budget
//     refuses what does not fit with ResourceExhausted, the rest fail to
//     decode), never left hanging;
//   - a window overrun: 100 messages on a fresh stream with no credit;
//     the server must end it with a ResourceExhausted StreamEnd.
//
// A round that does not see all of this counts as a hostile failure, which
// fails the run. The legitimate load's calls go on being counted as usual:
// none may be lost.

// hostileIdleTimeout is the servers' stream idle timeout in a soak, short
// so that idle-stream rounds end within the round.
const hostileIdleTimeout = 2 * time.Second

// hostileFrom is the attacker's source address.
const hostileFrom = "127.0.0.2"

// HostileReport counts what the attacker did and saw.
type HostileReport struct {
	Rounds      int      `json:"rounds"`
	IdleOpened  int      `json:"idle_streams_opened"`
	IdleEnded   int      `json:"idle_streams_ended"`
	IdleRefused int      `json:"idle_streams_refused"`
	Bombs       int      `json:"bombs_sent"`
	BombCodes   []string `json:"bomb_answer_codes,omitempty"`
	Overruns    int      `json:"overruns_told"`
	Failures    int      `json:"failures"`
	FailureText []string `json:"failure_details,omitempty"`
}

func (h *HostileReport) fail(format string, a ...any) {
	h.Failures++
	if len(h.FailureText) < 10 {
		h.FailureText = append(h.FailureText, fmt.Sprintf(format, a...))
	}
}

// rawConn speaks frames to a server.
type rawConn struct {
	c  net.Conn
	r  *protocol.Reader
	fb protocol.Builder
}

func dialRaw(addr string) (*rawConn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(hostileFrom)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, r: protocol.NewReader(c, 0, 64<<20, 1<<20)}, nil
}

func (c *rawConn) close() { c.fb.Release(); _ = c.c.Close() }

func (c *rawConn) send(t protocol.Type, flags, codec, comp uint8, id uint32, method string, body []byte) error {
	c.fb.Begin(t, flags, codec, comp, id)
	if method != "" {
		c.fb.B = protocol.AppendMethod(c.fb.B, method)
	}
	c.fb.EndMeta()
	c.fb.B = append(c.fb.B, body...)
	_, err := c.c.Write(c.fb.Finish())
	return err
}

// next returns the next Response/StreamEnd/Pong (type, id, code), waiting
// at most d.
func (c *rawConn) next(d time.Duration) (protocol.Type, uint32, spi.Code, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	for {
		var f protocol.Frame
		if err := c.r.ReadFrame(&f); err != nil {
			return 0, 0, 0, err
		}
		if f.Type == protocol.TypeWindowUpdate || f.Type == protocol.TypeStreamData {
			f.Release()
			continue
		}
		var m protocol.Meta
		_ = protocol.DecodeMeta(f.Meta, &m)
		f.Release()
		return f.Type, f.ID, m.ErrCode, nil
	}
}

// runHostile attacks the backends in turn every period until ctx ends.
func runHostile(ctx context.Context, period time.Duration, backends []*backend, rep *HostileReport) {
	z := zstd.New()
	defer z.Close()
	bomb, _ := z.Compress(nil, make([]byte, 4<<20-8<<10))
	for i := 0; ctx.Err() == nil; i++ {
		b := backends[i%len(backends)]
		b.mu.Lock()
		up := b.srv != nil
		b.mu.Unlock()
		if up {
			rep.Rounds++
			hostileRound(b.addr, bomb, rep)
		}
		sleepCtx(ctx, period)
	}
}

func hostileRound(addr string, bomb []byte, rep *HostileReport) {
	// A server restarted by the fault schedule mid-round is not a
	// failure: the round stops at the first connection error.
	idle := func() {
		var conns []*rawConn
		defer func() {
			for _, c := range conns {
				c.close()
			}
		}()
		const perConn = 100
		for range 2 {
			c, err := dialRaw(addr)
			if err != nil {
				return
			}
			conns = append(conns, c)
			for id := uint32(1); id <= perConn; id++ {
				if c.send(protocol.TypeRequest, protocol.FlagStream, spi.CodecJSON, 0, id, "Echo.Sink", nil) != nil {
					return
				}
			}
		}
		opened := perConn * len(conns)
		rep.IdleOpened += opened
		ended, refused := 0, 0
		for _, c := range conns {
			for got := 0; got < perConn; got++ {
				typ, _, code, err := c.next(hostileIdleTimeout + 5*time.Second)
				if err != nil {
					if !timedOut(err) {
						return // the server went away (a fault)
					}
					break
				}
				switch {
				case typ == protocol.TypeStreamEnd && code == spi.DeadlineExceeded:
					ended++
				case typ == protocol.TypeResponse && code == spi.ResourceExhausted:
					refused++
				case code == spi.Unavailable, typ == protocol.TypeGoAway:
					return // the server is shutting down (a fault): not the attack's doing
				default:
					rep.fail("idle streams on %s: unexpected frame type %d code %v", addr, typ, code)
				}
			}
		}
		rep.IdleEnded += ended
		rep.IdleRefused += refused
		if ended+refused < opened {
			rep.fail("idle streams on %s: %d opened, %d ended by the idle timeout, %d refused", addr, opened, ended, refused)
		}
	}
	bombs := func() {
		c, err := dialRaw(addr)
		if err != nil {
			return
		}
		defer c.close()
		const n = 8
		for id := uint32(1); id <= n; id++ {
			if c.send(protocol.TypeRequest, 0, spi.CodecJSON, spi.CompressZstd, id, "Echo.Echo", bomb) != nil {
				return
			}
		}
		rep.Bombs += n
		seen := map[string]bool{}
		for got := 0; got < n; got++ {
			typ, _, code, err := c.next(10 * time.Second)
			if err != nil {
				if timedOut(err) {
					rep.fail("bombs on %s: %d of %d answered: %v", addr, got, n, err)
				}
				return
			}
			if typ == protocol.TypeGoAway {
				return
			}
			if !seen[code.String()] {
				seen[code.String()] = true
				if len(rep.BombCodes) < 8 {
					rep.BombCodes = appendUnique(rep.BombCodes, code.String())
				}
			}
		}
	}
	overrun := func() {
		c, err := dialRaw(addr)
		if err != nil {
			return
		}
		defer c.close()
		if c.send(protocol.TypeRequest, protocol.FlagStream, spi.CodecJSON, 0, 1, "Echo.Sink", nil) != nil {
			return
		}
		for range 100 {
			if c.send(protocol.TypeStreamData, 0, spi.CodecJSON, 0, 1, "", []byte(`{"seq":1}`)) != nil {
				return
			}
		}
		// One answer decides: the StreamEnd that ends the overrun stream.
		{
			typ, _, code, err := c.next(5 * time.Second)
			if err != nil {
				if timedOut(err) {
					rep.fail("window overrun on %s: no StreamEnd: %v", addr, err)
				}
				return
			}
			if typ == protocol.TypeGoAway || code == spi.Unavailable {
				return
			}
			if typ == protocol.TypeStreamEnd && code == spi.ResourceExhausted {
				rep.Overruns++
				return
			}
			rep.fail("window overrun on %s: frame type %d code %v instead of a ResourceExhausted StreamEnd", addr, typ, code)
			return
		}
	}
	idle()
	bombs()
	overrun()
}

// timedOut tells a server that did not answer from one that went away.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
